"""Benchmark: ``gitops controller`` keeping 1,000 Applications converged (issue 10).

Everything runs as separate processes on loopback, as in a cluster: the Kubernetes API
emulator (``python -m gitops.testing.kube --kubeconfig PATH``), ``gitops controller
--kubeconfig PATH`` (default ``--workers 4``) whose kubeconfig points at a counting relay
in front of the emulator, and a ``git daemon`` for the Git source. The relay runs in this
process and counts every request the controller sends, by verb (``classify`` of
``bench/k8s_requests.py``: get, list, watch, create, update, patch, dry-run, delete):
requests are counted on the wire, not by the emulator's counters. Applications are
created through the API (POST of ``applications.gitops.dev`` objects); this process
watches them directly on the emulator (not through the relay) to see when each is Ready.

Each Application owns 10 objects in a namespace of its own (the Namespace, a
ServiceAccount, two ConfigMaps, a Secret, a Service, a Deployment, a Role, a RoleBinding,
a NetworkPolicy) from a ``dir:`` source (a folder per application; the Git source has
its own benchmark, ``bench/git_fetch.py``), a bare ``k8s:`` target (the controller's
cluster), ``prune: true`` and ``interval: 10s``. Measured:

1. converge from empty: the controller runs, then 1,000 Applications are created; the
   time from the first create until every one has ``Ready=True`` for its generation.
   Budget: < 60 s. The objects are then counted in the emulator (10 per application).
2. a steady-state cycle, nothing changed: after one whole interval to settle, a window
   of ``--cycles`` intervals. The relay's counts in the window (budget: 0 writes), and
   the controller process's CPU time (``utime + stime`` of ``/proc/PID/stat``) divided
   by the reconciles it did in the window (``gitops_reconcile_total`` scraped from its
   ``/metrics``: one per application per cycle): budget < 2 ms of CPU per application
   per cycle.
3. webhook to cluster: one more Application with a Git source (``git daemon``,
   ``interval: 1h``), reconciled by the same controller while the 1,000 keep cycling;
   ``--pushes`` times: commit and push a change to its ConfigMap, then POST a signed
   GitHub push event to ``--webhook-addr``; the time from the POST until the emulator
   serves the changed ConfigMap (polled every 5 ms). Budget: the slowest < 2 s.
4. two shards: a fresh emulator, two ``gitops controller --shards 2`` processes; once
   each holds one shard, the 1,000 Applications are created: the time until all are
   Ready. Printed (no budget).

Exits 1 when a budget is over. Heavy (about two minutes of both cores of a laptop): run
it alone. Reproduce: ``make bench`` or ``.venv/bin/python bench/operator.py [--apps N]
[--cycles C] [--pushes P] [--no-shards] [--keep DIR]`` (``--keep`` leaves the logs).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from k8s_requests import READS, WRITES, classify, total, write_kubeconfig

from gitops.operator.crd import application_crd
from gitops.operator.kubeapi import Expired, OperatorAPI
from gitops.targets.kubernetes.errors import StatusError, TransportError
from gitops.targets.kubernetes.http import APPLY_PATCH
from gitops.testing.gitserver import GitDaemon, WorkRepo, free_port

CONVERGE_BUDGET_S = 60.0
STEADY_CPU_BUDGET_MS = 2.0
WEBHOOK_BUDGET_S = 2.0

APPS_NAMESPACE = "bench-apps"
INTERVAL_S = 10
SECRET = b"bench-webhook-secret"
PYTHON = sys.executable
APPLICATIONS = "/apis/gitops.dev/v1alpha1/namespaces/{namespace}/applications"


# -- the sources ----------------------------------------------------------------------------


def app_objects(index: int, value: str = "1") -> list[dict[str, Any]]:
    """The 10 objects of application ``index``, in a namespace of its own."""
    ns = f"bench-{index:04d}"
    meta = {"name": "app", "namespace": ns, "labels": {"app": "app"}}
    rule = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"value": value}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": "app-env"},
         "data": {"INDEX": str(index), "MODE": "bench"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
         "stringData": {"token": f"not-a-secret-{index}"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": {
                "serviceAccountName": "app",
                "containers": [{"name": "app", "image": "nginx:1.27",
                                "envFrom": [{"configMapRef": {"name": "app-env"}}]}]}}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": rule},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
         "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
         "spec": {"podSelector": {"matchLabels": {"app": "app"}}}},
    ]


def write_sources(root: Path, apps: int) -> list[Path]:
    folders = []
    for index in range(apps):
        folder = root / f"app-{index:04d}"
        folder.mkdir(parents=True)
        (folder / "objects.yaml").write_text(yaml.safe_dump_all(app_objects(index)))
        folders.append(folder)
    return folders


def application(name: str, source: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": APPS_NAMESPACE},
        "spec": {"source": {"url": source}, "target": {"url": "k8s:"}, "interval": interval,
                 "prune": True},
    }


# -- the counting relay --------------------------------------------------------------------


class CountingRelay:
    """A TCP relay in front of the emulator that counts the HTTP requests passing through
    by verb (``k8s_requests.classify``: get, list, watch, create, patch, dry-run...).

    The counting proxy of ``bench/k8s_requests.py`` re-frames every request and response
    with ``http.server`` and ``http.client``; at this scale that costs the host as much
    CPU as the controller under test. This relay only reads the request heads (to find
    where each request ends, HTTP/1.1 with Content-Length bodies as every Kubernetes
    client sends them) and copies bytes both ways.
    """

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self._upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def take(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._upstream)
            except OSError:
                return
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._copy, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        """Client to server: count each request (its head), forward it with its body."""
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                length = 0
                for field in fields:
                    name, _, value = field.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    elif name.strip().lower() == "transfer-encoding":
                        raise ValueError("chunked request bodies are not relayed")
                with self._lock:
                    self.counts[classify(method, target)] += 1
                body, buffer = buffer[:length], buffer[length:]
                server.sendall(head + b"\r\n\r\n" + body)
                left = length - len(body)
                while left > 0:
                    chunk = client.recv(min(65536, left))
                    if not chunk:
                        return
                    server.sendall(chunk)
                    left -= len(chunk)
        except (OSError, ValueError):
            return
        finally:
            self._end(client, server)

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        """Server to client: bytes as they come (responses, watch streams); then close."""
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self._end(source, sink)
            with self._lock:
                self._sockets.difference_update((source, sink))
            source.close()
            sink.close()

    @staticmethod
    def _end(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def counting_relay(upstream: str) -> Iterator[CountingRelay]:
    relay = CountingRelay(upstream)
    try:
        yield relay
    finally:
        relay.close()


# -- processes ------------------------------------------------------------------------------


class Emulator:
    """``python -m gitops.testing.kube`` in a process of its own, with the CRD installed."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = workdir / "kubeconfig"
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gitops.testing.kube", "--kubeconfig", str(self.kubeconfig)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.kubeconfig.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API emulator did not start")
            time.sleep(0.05)
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.url = str(config["clusters"][0]["cluster"]["server"])
        self.api = OperatorAPI.from_kubeconfig(str(self.kubeconfig))
        client = self.api.client
        client.request("PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "applications.gitops.dev", query=[("fieldManager", "bench")],
                       body=application_crd(), content_type=APPLY_PATCH)
        for namespace in (APPS_NAMESPACE, "gitops-system"):  # as `gitops install` makes it
            client.request("POST", "/api/v1/namespaces",
                           body={"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": namespace}})

    def create(self, app: dict[str, Any]) -> None:
        self.api.client.request("POST", APPLICATIONS.format(namespace=APPS_NAMESPACE),
                                body=app, resend=False, verb="create")

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.api.client.request("GET", path, verb="get")
            return found
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise

    def count(self, collection: str) -> int:
        return len(self.api.client.request("GET", collection, verb="list").get("items") or [])

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Controller:
    """A ``gitops controller`` process, its metrics and webhook ports, its CPU time."""

    def __init__(self, workdir: Path, kubeconfig: str, *args: str, webhook: bool = False
                 ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()
        self.webhook_port = free_port() if webhook else 0
        secret = workdir / "webhook-secret"
        secret.write_bytes(SECRET)
        hooks = ["--webhook-addr", f"127.0.0.1:{self.webhook_port}",
                 "--webhook-secret-file", str(secret)] if webhook else []
        self.log = workdir / "controller.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
                 "controller", "--kubeconfig", kubeconfig,
                 "--metrics-addr", f"127.0.0.1:{self.metrics_port}", *hooks,
                 "--log-format", "json", *args],
                cwd=workdir, stdout=subprocess.DEVNULL, stderr=log,
                env={**os.environ, "GITOPS_CACHE_DIR": str(workdir / "cache")})
        wait_for(self.ready, 60, "the controller's /readyz")

    def _get(self, path: str) -> bytes | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the controller exited with {self.process.returncode}; see "
                               f"{self.log}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}",
                                        timeout=10) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError):
            return None

    def ready(self) -> bool:
        return self._get("/readyz") is not None

    def reconciles(self) -> int:
        """``gitops_reconcile_total`` summed over applications and results."""
        text = (self._get("/metrics") or b"").decode()
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("gitops_reconcile_total{")))

    def cpu_seconds(self) -> float:
        """The process's user + system CPU time so far."""
        return cpu_seconds(self.process.pid)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.webhook_port}{path}",
                                         data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> int:
        """SIGTERM (the syncs in flight finish); the exit code (printed unless 0)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code:
            tail = self.log.read_text(errors="replace").splitlines()[-3:]
            print(f"  !! the controller exited with {code} on SIGTERM:", *tail, sep="\n  ")
        return code


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # from field 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05
             ) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


# -- readiness, watched on the emulator ---------------------------------------------------------


class ReadyWatch:
    """Watches Applications (directly on the emulator) and records when each is Ready
    (``Ready=True`` observed at its current generation)."""

    def __init__(self, api: OperatorAPI) -> None:
        self._api = api
        self._ready: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="ready-watch")
        self._thread.start()

    def _see(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        status = obj.get("status") or {}
        ready = kind != "DELETED" and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            and c.get("observedGeneration") == meta.get("generation")
            for c in status.get("conditions") or ())
        with self._cond:
            if ready:
                self._ready.setdefault(key, time.monotonic())
            else:
                self._ready.pop(key, None)
            self._cond.notify_all()

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    items, version = self._api.list_applications()
                    for item in items:
                        self._see("ADDED", item)
                self._watch = self._api.watch_applications(version, timeout_seconds=60)
                with self._watch as watch:
                    for kind, obj in watch:
                        self._see(kind, obj)
                    version = watch.resource_version
            except Expired:
                version = ""
            except (StatusError, TransportError):
                if self._stop.is_set():
                    return
                version = ""
                time.sleep(0.2)

    def wait(self, keys: set[str], timeout: float) -> float:
        """Wait until every one of ``keys`` is Ready; the time the last one became so."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not keys <= self._ready.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(keys - self._ready.keys())
                    raise TimeoutError(f"{len(missing)} of {len(keys)} applications not Ready "
                                       f"after {timeout:.0f}s (e.g. {missing[:3]})")
                self._cond.wait(min(left, 1.0))
            return max(self._ready[k] for k in keys)

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.close()
        self._thread.join(timeout=5)


# -- the phases ---------------------------------------------------------------------------------


def create_applications(emulator: Emulator, folders: list[Path], interval: str) -> set[str]:
    keys = set()
    for index, folder in enumerate(folders):
        name = f"app-{index:04d}"
        emulator.create(application(name, f"dir:{folder}", interval))
        keys.add(f"{APPS_NAMESPACE}/{name}")
    return keys


def check_objects(emulator: Emulator, apps: int) -> list[str]:
    """Problems with what the emulator holds after convergence (none expected)."""
    wanted = {"/api/v1/configmaps": 2, "/api/v1/secrets": 1, "/api/v1/serviceaccounts": 1,
              "/api/v1/services": 1, "/apis/apps/v1/deployments": 1,
              "/apis/rbac.authorization.k8s.io/v1/roles": 1,
              "/apis/rbac.authorization.k8s.io/v1/rolebindings": 1,
              "/apis/networking.k8s.io/v1/networkpolicies": 1}
    problems = []
    for collection, per_app in wanted.items():
        found = emulator.count(f"{collection}?labelSelector=app%3Dapp")
        if found != per_app * apps:
            problems.append(f"{collection}: {found} objects, expected {per_app * apps}")
    return problems


def converge(emulator: Emulator, watcher: ReadyWatch, folders: list[Path], interval: str
             ) -> tuple[float, set[str]]:
    started = time.monotonic()
    keys = create_applications(emulator, folders, interval)
    created = time.monotonic() - started
    print(f"  {len(keys)} Applications created in {created:.1f}s")
    last = watcher.wait(keys, 600)
    return last - started, keys


def steady_state(controller: Controller, relay: CountingRelay, apps: int, cycles: int
                 ) -> tuple[Counter[str], float, int, float]:
    """(requests by verb, CPU seconds, reconciles, seconds) over ``cycles`` intervals."""
    time.sleep(INTERVAL_S * 1.2)  # one whole interval (and its jitter) to settle
    relay.take()
    reconciles, cpu = controller.reconciles(), controller.cpu_seconds()
    started = time.monotonic()
    time.sleep(INTERVAL_S * cycles)
    cpu = controller.cpu_seconds() - cpu
    reconciles = controller.reconciles() - reconciles
    elapsed = time.monotonic() - started
    return relay.take(), cpu, reconciles, elapsed


class HookRepo:
    """A Git repository served by ``git daemon``, and the signed GitHub push event for it."""

    def __init__(self, root: Path) -> None:
        served = root / "served"
        served.mkdir(parents=True)
        self.bare = served / "config.git"
        self.work = WorkRepo(root / "work", home=root / "home")
        self.value = 0
        self.commit()
        self.daemon = GitDaemon(served).start()
        self.source = f"{self.daemon.url('config.git')}@main#path=apps/hook"

    def commit(self) -> None:
        self.value += 1
        manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "hook", "namespace": APPS_NAMESPACE},
                    "data": {"value": str(self.value)}}
        self.work.write({"apps/hook/cm.yaml": yaml.safe_dump(manifest)})
        self.work.commit(f"value {self.value}")
        self.work.push(self.bare)

    def push_event(self) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({
            "ref": "refs/heads/main", "before": "0" * 40, "after": self.work.head(),
            "repository": {"full_name": "bench/config",
                           "git_url": f"git://127.0.0.1:{self.daemon.port}/config.git"},
        }).encode()
        digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                      "X-GitHub-Delivery": f"bench-{self.value}",
                      "X-Hub-Signature-256": f"sha256={digest}"}


def webhook_latency(emulator: Emulator, watcher: ReadyWatch, controller: Controller,
                    repo: HookRepo, pushes: int) -> list[float]:
    emulator.create(application("hook", repo.source, "1h"))
    watcher.wait({f"{APPS_NAMESPACE}/hook"}, 60)
    path = f"/api/v1/namespaces/{APPS_NAMESPACE}/configmaps/hook"

    def value() -> str:
        obj = emulator.get(path) or {}
        return str((obj.get("data") or {}).get("value"))

    if value() != str(repo.value):
        raise RuntimeError(f"the hook application applied {value()!r}, not {repo.value}")
    latencies = []
    for _ in range(pushes):
        repo.commit()
        body, headers = repo.push_event()
        posted = time.monotonic()
        code = controller.post("/hooks/git", body, headers)
        if code != 202:
            raise RuntimeError(f"the webhook answered {code}")
        wait_for(lambda: value() == str(repo.value), 30, "the pushed commit", step=0.005)
        latencies.append(time.monotonic() - posted)
        time.sleep(0.5)
    return latencies


def shards_held(controller: Controller) -> str:
    held = [str(line.get("msg", "")) for line in controller.log_lines()
            if line.get("reason") == "ShardsChanged"]
    return held[-1] if held else ""


# -- the phases, reported ---------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok  " if ok else "OVER"


def report_converge(emulator: Emulator, watcher: ReadyWatch, controller: Controller,
                    relay: CountingRelay, folders: list[Path]) -> int:
    apps = len(folders)
    print(f"1. {apps} Applications x 10 objects, one controller, from empty")
    relay.take()
    cpu = controller.cpu_seconds()
    others = cpu_seconds(emulator.process.pid), time.process_time()
    seconds, _ = converge(emulator, watcher, folders, f"{INTERVAL_S}s")
    cpu = controller.cpu_seconds() - cpu
    others = (cpu_seconds(emulator.process.pid) - others[0], time.process_time() - others[1])
    counts = relay.take()
    problems = check_objects(emulator, apps)
    ok = seconds < CONVERGE_BUDGET_S and not problems
    print(f"  {verdict(ok)} all Ready in {seconds:.1f}s (budget < {CONVERGE_BUDGET_S:.0f}s)")
    print(f"  controller CPU {cpu:.1f}s ({cpu / apps * 1000:.1f} ms/app); meanwhile the "
          f"emulator {others[0]:.1f}s, this process (relay, watch) {others[1]:.1f}s")
    print(f"  requests: {dict(sorted(counts.items()))}")
    for problem in problems:
        print(f"  !! {problem}")
    return int(not ok)


def report_steady(controller: Controller, relay: CountingRelay, apps: int, cycles: int) -> int:
    print(f"2. steady state: {cycles} cycles of interval {INTERVAL_S}s, nothing changed")
    counts, cpu, reconciles, elapsed = steady_state(controller, relay, apps, cycles)
    writes = total(counts, WRITES)
    per_app = cpu / reconciles * 1000 if reconciles else float("inf")
    print(f"  {reconciles} reconciles in {elapsed:.1f}s ({reconciles / apps:.2f} per "
          f"application); controller CPU {cpu:.2f}s; requests counted by the relay: "
          f"{dict(sorted(counts.items()))} ({total(counts, READS)} reads)")
    print(f"  {verdict(writes == 0)} writes to the API: {writes} (budget: 0)")
    print(f"  {verdict(per_app < STEADY_CPU_BUDGET_MS)} controller CPU per application per "
          f"cycle: {per_app:.2f} ms (budget < {STEADY_CPU_BUDGET_MS:.0f} ms)")
    return int(writes != 0) + int(per_app >= STEADY_CPU_BUDGET_MS)


def report_webhook(emulator: Emulator, watcher: ReadyWatch, controller: Controller,
                   tmp: Path, pushes: int) -> int:
    print(f"3. webhook to cluster: a Git source (git daemon, interval 1h), {pushes} pushes")
    repo = HookRepo(tmp / "git")
    try:
        latencies = webhook_latency(emulator, watcher, controller, repo, pushes)
    finally:
        repo.daemon.stop()
    worst = max(latencies)
    print(f"  {verdict(worst < WEBHOOK_BUDGET_S)} POST to changed object: median "
          f"{statistics.median(latencies) * 1000:.0f} ms, slowest {worst * 1000:.0f} ms "
          f"(budget < {WEBHOOK_BUDGET_S:.0f} s)")
    return int(worst >= WEBHOOK_BUDGET_S)


def one_controller(tmp: Path, folders: list[Path], cycles: int, pushes: int) -> int:
    """Phases 1 to 3 with one controller; how many budgets are over (or failures)."""
    emulator = Emulator(tmp / "emulator")
    watcher = ReadyWatch(emulator.api)
    controller: Controller | None = None
    over = 0
    try:
        with counting_relay(emulator.url) as relay:
            kubeconfig = write_kubeconfig(tmp / "kubeconfig", relay.url)
            controller = Controller(tmp / "controller", kubeconfig, webhook=True)
            over += report_converge(emulator, watcher, controller, relay, folders)
            over += report_steady(controller, relay, len(folders), cycles)
            over += report_webhook(emulator, watcher, controller, tmp, pushes)
    finally:
        watcher.close()
        if controller is not None:
            over += bool(controller.stop())
        emulator.stop()
    return over


def two_shards(tmp: Path, folders: list[Path]) -> int:
    """Phase 4: two controllers with ``--shards 2``; failures (there is no budget)."""
    print(f"4. {len(folders)} Applications, two controllers with --shards 2, from empty")
    emulator = Emulator(tmp / "emulator-shards")
    watcher = ReadyWatch(emulator.api)
    controllers: list[Controller] = []
    failed = 0
    try:
        with counting_relay(emulator.url) as relay:
            kubeconfig = write_kubeconfig(tmp / "kubeconfig-shards", relay.url)
            for replica in ("a", "b"):
                controllers.append(Controller(tmp / f"controller-shard-{replica}", kubeconfig,
                                              "--shards", "2", "--identity", replica))
            started = time.monotonic()
            wait_for(lambda: {shards_held(c) for c in controllers}
                     == {"shards held: [0]", "shards held: [1]"}, 120, "one shard each")
            print(f"  each holds one shard {time.monotonic() - started:.1f}s after start")
            pids = [c.process.pid for c in controllers] + [emulator.process.pid]
            cpu = [cpu_seconds(pid) for pid in pids]
            seconds, _ = converge(emulator, watcher, folders, f"{INTERVAL_S}s")
            cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
            print(f"  all Ready in {seconds:.1f}s (no budget)")
            print(f"  controllers CPU {cpu[0]:.1f}s and {cpu[1]:.1f}s; meanwhile the emulator "
                  f"{cpu[2]:.1f}s")
    finally:
        watcher.close()
        for controller in controllers:
            failed += bool(controller.stop())
        emulator.stop()
    return failed


@contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    """A temporary directory, or ``keep`` (made empty, and left behind for a look)."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="gitops-bench-operator-") as name:
            yield Path(name)
        return
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    yield keep


def run(apps: int, cycles: int, pushes: int, shards: bool, keep: Path | None) -> int:
    with workdir(keep) as tmp:
        folders = write_sources(tmp / "sources", apps)
        over = one_controller(tmp, folders, cycles, pushes)
        if shards:
            over += two_shards(tmp, folders)
    return 1 if over else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3, help="steady-state window, intervals")
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--no-shards", action="store_true", help="skip the two-shard phase")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="work in DIR and leave it (logs, sources) for a look")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        return run(args.apps, args.cycles, args.pushes, not args.no_shards, args.keep)
    return 1


if __name__ == "__main__":
    sys.exit(main())
