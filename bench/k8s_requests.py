"""Benchmark: API requests per reconcile, measured by a counting proxy in front of the emulator.

1,000 objects across 10 kinds (Namespaces, ClusterRoles and eight namespaced kinds in four
namespaces: 34 kind-and-namespace scopes). Every client talks to the API emulator through
a loopback HTTP proxy that forwards each request and counts it by verb (discovery, get,
list, watch, dry-run, create, update, patch, delete); nothing below is computed.

The ``k8s:`` target, each phase counted on its own:

* cold plan on an empty cluster, then the first sync (creates everything);
* cold plan by a new process once everything exists (budget: one LIST per kind and
  namespace scope, plus discovery, plus the inventory's GET);
* a no-op reconcile (plan + sync) with a warm watch cache (budget: zero reads, no write);
* a sync with 10 changed objects, warm (budget: no read, at most 10 writes and the
  inventory's new revision).

Beside it, the same kind of reconcile (10 of the 1,000 objects changed) by:

* kubectl-style: the real ``kubectl apply --server-side -f DIR`` (kubectl 1.32 on this
  machine), with a fresh discovery cache;
* Flux-style: what Flux's kustomize-controller does (fluxcd/pkg/ssa): per object a GET of
  the live object and a dry-run server-side apply to see whether it drifted, then a
  server-side apply per changed object, emulated with gitops' HTTP client.

Prints a table; exits 1 when a budget of the ``k8s:`` target is over.
Reproduce: ``.venv/bin/python bench/k8s_requests.py [--objects N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from gitops import Reconciler
from gitops.differs.normalize import strip_ignored
from gitops.model import Resource
from gitops.targets.kubernetes import KubernetesTarget
from gitops.targets.kubernetes.apply import apply_body
from gitops.targets.kubernetes.discovery import Discovery
from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.http import APPLY_PATCH, KubeClient, load_api_client
from gitops.testing.kube import KubeEmulator

NAMESPACES = 4
NAMESPACED_KINDS = 8
READS = ("discovery", "get", "list", "watch")
WRITES = ("create", "update", "patch", "delete")
COLUMNS = ("discovery", "get", "list", "watch", "dry-run", "writes")


# -- the source -------------------------------------------------------------------------


def manifests(total: int) -> list[dict[str, Any]]:
    """``total`` objects: 4 Namespaces, ClusterRoles, and 8 namespaced kinds spread evenly."""
    namespaces = [f"bench-{n}" for n in range(NAMESPACES)]
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    per_kind = (total - NAMESPACES) // (NAMESPACED_KINDS + 1)
    per_scope = per_kind // NAMESPACES
    namespaced = per_scope * NAMESPACES * NAMESPACED_KINDS
    roles = total - NAMESPACES - namespaced
    rule = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    out += [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": f"bench-role-{i:04d}"}, "rules": rule} for i in range(roles)]
    for ns in namespaces:
        for i in range(per_scope):
            name = f"obj-{i:04d}"
            meta = {"name": name, "namespace": ns, "labels": {"app": name}}
            out += [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                 "data": {"index": str(i)}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                 "stringData": {"token": f"not-a-secret-{i}"}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
                {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                 "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
                    "replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {
                        "containers": [{"name": "app", "image": "nginx:1.27"}]}}}},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                 "rules": rule},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                               "kind": "Role", "name": name},
                 "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": meta, "spec": {"podSelector": {"matchLabels": {"app": name}}}},
            ]
    return out


def write_source(root: Path, objects: list[dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for start in range(0, len(objects), 100):
        with open(root / f"objects-{start // 100:03d}.yaml", "w") as handle:
            yaml.safe_dump_all(objects[start:start + 100], handle)


def change(objects: list[dict[str, Any]], start: int, value: str) -> int:
    """Change the data of 10 ConfigMaps (fewer if there are not that many), from the
    ``start``-th on; returns how many."""
    configmaps = [o for o in objects if o["kind"] == "ConfigMap"]
    chosen = [configmaps[(start + i) % len(configmaps)] for i in range(min(10, len(configmaps)))]
    for obj in chosen:
        obj["data"] = {"index": value}
    return len(chosen)


# -- the counting proxy -------------------------------------------------------------------


def classify(method: str, target: str) -> str:
    """The verb of one request, as the budgets count them."""
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    segments = [s for s in parts.path.split("/") if s]
    if not segments or segments[0] in ("version", "openapi"):
        return "discovery"
    rest = segments[2:] if segments[0] == "api" else segments[3:]
    if not rest:
        return "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource: namespaces/NS/RESOURCE[/NAME[/SUB]]
    if "dryRun" in query:
        return "dry-run"
    if method == "GET":
        if query.get("watch", [""])[0] in ("true", "1"):
            return "watch"
        return "list" if len(rest) == 1 else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower())


class CountingProxy(ThreadingHTTPServer):
    """Forwards HTTP/1.1 to ``upstream`` and counts every request by :func:`classify`."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, verb: str) -> None:
        with self.lock:
            self.counts[verb] += 1

    def take(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingProxy

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and
        # the peer's delayed ACK add ~40 ms to every request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def _forward(self) -> None:
        self.server.count(classify(self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        try:
            response = self._exchange(body, headers)
        except (ConnectionError, http.client.HTTPException):  # the emulator is stopping
            self.close_connection = True
            return
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        if response.getheader("Content-Length") is not None:
            data = response.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")  # a watch: stream it through
        self.end_headers()
        try:
            while chunk := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (a watch it closed)
            self.close_connection = True
            response.close()

    def _exchange(self, body: bytes | None, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send upstream on this connection's upstream connection (a new one if the
        emulator closed the kept-alive one)."""
        for reused in (self._upstream is not None, False):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.upstream, timeout=600)
                self._upstream.connect()
                assert self._upstream.sock is not None
                self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                return self._upstream.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError):
                with contextlib.suppress(OSError):
                    self._upstream.close()
                self._upstream = None
                if not reused:
                    raise
        raise AssertionError("unreachable")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def write_kubeconfig(path: Path, server: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": server}}],
        "users": [{"name": "bench", "user": {"token": "bench-token"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
    }))
    return str(path)


# -- the clients ----------------------------------------------------------------------------


def kubectl_apply(kubeconfig: str, source: Path, cache_dir: Path) -> None:
    """A kubectl-style reconcile: ``kubectl apply --server-side`` of every object."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", str(cache_dir), "apply",
         "--server-side", "--force-conflicts", "--field-manager", "kubectl-bench", "-f",
         str(source)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {done.stderr.strip()[:500]}")


def _compared(obj: dict[str, Any]) -> Any:
    return strip_ignored(obj)


def flux_apply(kubeconfig: str, objects: list[dict[str, Any]]) -> int:
    """A Flux-style reconcile (fluxcd/pkg/ssa): per object, GET the live object and
    dry-run the apply; apply (force) only the objects whose dry run differs. Returns how
    many it applied."""
    loaded = load_api_client("k8s:", kubeconfig, None)
    client = KubeClient(loaded.api_client)
    discovery = Discovery(client)
    query = [("fieldManager", "kustomize-controller"), ("force", "true")]
    changed = []
    for manifest in objects:
        resource = Resource.from_manifest(manifest)
        group, _, version = resource.api_version.rpartition("/")
        api = discovery.resolve(group, resource.kind, version)
        assert api is not None, resource.key
        path = api.item(resource.key.namespace, resource.key.name)
        try:
            live = client.request("GET", path, verb="get")
        except StatusError as exc:
            if exc.code != 404:
                raise
            live = None
        body = apply_body(resource)
        dry = client.request("PATCH", path, query=[*query, ("dryRun", "All")], body=body,
                             content_type=APPLY_PATCH, verb="patch dry-run")
        if live is None or _compared(dry) != _compared(live):
            changed.append((path, body))
    for path, body in changed:
        client.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH,
                       verb="patch")
    client.close()
    loaded.api_client.close()
    return len(changed)


# -- measuring --------------------------------------------------------------------------------


class Meter:
    """One row per phase: the proxy's counts and the wall time."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.rows: list[tuple[str, Counter[str], float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.proxy.take()
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.rows.append((name, self.proxy.take(), elapsed))

    def counts(self, prefix: str) -> Counter[str]:
        return next(c for n, c, _ in self.rows if n.startswith(prefix))


def total(counts: Counter[str], verbs: tuple[str, ...]) -> int:
    return sum(counts.get(v, 0) for v in verbs)


def run(total_objects: int, *, kubectl: bool = True) -> int:
    objects = manifests(total_objects)
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    scopes = {(o["kind"], o["metadata"].get("namespace", "")) for o in objects}
    print(f"{len(objects)} objects, {len(kinds)} kinds, {len(scopes)} kind-and-namespace "
          "scopes; every request counted by a proxy in front of the API emulator\n")
    with (KubeEmulator() as emulator, counting_proxy(emulator.url) as proxy,
          tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as targets):
        source = Path(tmp) / "source"
        write_source(source, objects)
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", proxy.url)
        meter = Meter(proxy)

        def reconciler(**target_options: Any) -> Reconciler:
            target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, **target_options)
            targets.callback(target.close)  # the Reconciler closes only what it opened
            return Reconciler(str(source), target, name="bench", prune=True)

        with reconciler() as rec:
            with meter.phase("k8s: cold plan, empty cluster"):
                plan = rec.plan()
            with meter.phase(f"k8s: first sync ({len(plan.changes)} creates)"):
                assert rec.sync(plan).succeeded
        with reconciler() as rec, meter.phase("k8s: cold plan, new process"):
            assert rec.plan().in_sync
        with reconciler(watch=True) as rec:
            rec.sync()  # warms the cache: one LIST and one WATCH per kind
            time.sleep(0.5)
            with meter.phase("k8s: no-op reconcile, warm watch cache"):
                result = rec.sync()
                assert result.succeeded and not result.results
            changed = change(objects, 0, "changed")
            write_source(source, objects)
            with meter.phase(f"k8s: sync of {changed} changed, warm"):
                result = rec.sync()
                assert result.succeeded and len(result.results) == changed, result.failed
        change(objects, 0, "changed again")
        write_source(source, objects)
        with reconciler() as rec, meter.phase(f"k8s: sync of {changed} changed, cold"):
            result = rec.sync()
            assert result.succeeded and len(result.results) == changed, result.failed

        change(objects, 10, "flux")
        with meter.phase(f"Flux-style: reconcile, {changed} changed"):
            applied = flux_apply(kubeconfig, objects)
        if kubectl and shutil.which("kubectl"):
            change(objects, 20, "kubectl")
            write_source(source, objects)
            with meter.phase(f"kubectl-style: apply, {changed} changed"):
                kubectl_apply(kubeconfig, source, Path(tmp) / "kubectl-cache")
        report(meter.rows)
        print(f"\n(the Flux-style client found {applied} objects to apply)")
        return check(meter, len(scopes), changed)


def report(rows: list[tuple[str, Counter[str], float]]) -> None:
    print(f"{'phase':<40} " + " ".join(f"{c:>9}" for c in COLUMNS) + f" {'total':>6} "
          f"{'seconds':>8}")
    for name, counts, seconds in rows:
        cells = [counts.get(c, 0) for c in COLUMNS[:-1]] + [total(counts, WRITES)]
        print(f"{name:<40} " + " ".join(f"{v:>9}" for v in cells)
              + f" {sum(counts.values()):>6} {seconds:>8.2f}")


def check(meter: Meter, scopes: int, changed: int) -> int:
    """Print each budget's verdict; 1 if any is over."""
    cold = meter.counts("k8s: cold plan, new")
    noop = meter.counts("k8s: no-op")
    cold_sync = meter.counts(f"k8s: sync of {changed} changed, cold")
    warm = meter.counts(f"k8s: sync of {changed} changed, warm")
    budgets: list[tuple[str, Callable[[], bool]]] = [
        (f"cold plan: at most one LIST per kind and namespace scope ({cold['list']} LISTs, "
         f"{scopes} scopes), one GET (the inventory: {cold['get']}), no write",
         lambda: cold["list"] <= scopes and cold["get"] <= 1 and total(cold, WRITES) == 0),
        (f"cold sync of {changed} changes: at most one LIST per scope ({cold_sync['list']}), "
         f"one GET ({cold_sync['get']}), {changed} writes + the inventory "
         f"({total(cold_sync, WRITES)})",
         lambda: cold_sync["list"] <= scopes and cold_sync["get"] <= 1
         and total(cold_sync, WRITES) <= changed + 1),
        (f"no-op reconcile with a warm watch cache: zero reads ({total(noop, READS)}), "
         f"zero writes ({total(noop, WRITES)})",
         lambda: total(noop, READS) == 0 and total(noop, WRITES) == 0),
        (f"{changed} changes, warm: zero reads ({total(warm, READS)}), at most {changed} "
         f"writes + the inventory ({total(warm, WRITES)})",
         lambda: total(warm, READS) == 0 and total(warm, WRITES) <= changed + 1),
    ]
    print()
    over = 0
    for text, within in budgets:
        ok = within()
        over += not ok
        print(("ok    " if ok else "OVER  ") + text)
    return 1 if over else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--no-kubectl", action="store_true", help="skip the kubectl client")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        return run(args.objects, kubectl=not args.no_kubectl)
    return 1


if __name__ == "__main__":
    sys.exit(main())
