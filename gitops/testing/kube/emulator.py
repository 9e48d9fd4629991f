"""``KubeEmulator``: a Kubernetes API server emulator on loopback, for tests and benchmarks.

Start it, point a client (the ``kubernetes`` package, kubectl, the ``k8s:`` target) at
:attr:`KubeEmulator.kubeconfig_path`, and read the request counters afterwards. It keeps
everything in memory and serves plain HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gitops.testing.kube import kubeconfig
from gitops.testing.kube.api import Api
from gitops.testing.kube.discovery import Discovery
from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.server import EmulatorHTTPServer, RequestLog
from gitops.testing.kube.store import Store

__all__ = ["KubeEmulator"]

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


class KubeEmulator:
    """An emulated Kubernetes API server.

    ``kubeconfig``: where to write the kubeconfig on :meth:`start` (a temporary file when
    None, removed on :meth:`stop`); ``port``: 0 picks a free one. Keyword options:
    ``controllers`` (default True) runs the stand-in controllers (workload status,
    namespace defaults); ``history`` bounds the watch event log; ``null_empty_bytes``
    serves empty Secret ``data`` and ConfigMap ``binaryData`` values as ``null`` instead
    of ``""``, as some real servers did (see docs/kubernetes-emulator.md).
    """

    def __init__(self, kubeconfig: Path | None = None, port: int = 0, *, controllers: bool = True,
                 history: int = 20000, null_empty_bytes: bool = False) -> None:
        self._requested_kubeconfig = Path(kubeconfig) if kubeconfig is not None else None
        self._port = port
        self._log = RequestLog()
        self.store = Store(history=history)
        self.discovery = Discovery()
        self.api = Api(self.discovery, self.store, controllers=controllers, null_empty_bytes=null_empty_bytes)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.kubeconfig_path: Path | None = None
        for name in SYSTEM_NAMESPACES:
            self._seed_namespace(name)

    def _seed_namespace(self, name: str) -> None:
        rtype = self.discovery.lookup("", "v1", "namespaces")
        assert rtype is not None
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.api._create(rtype, "v1", "", body, "kube-apiserver", False, ssa_config=None, force=False)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1, serve in a background thread, then write the kubeconfig."""
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer(("127.0.0.1", self._port), self.api, self._log)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"kube-emulator:{self.port}", daemon=True)
        self._thread.start()
        if self._requested_kubeconfig is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="gitops-kube-emulator-")
            self.kubeconfig_path = Path(self._tmpdir.name) / "kubeconfig"
        else:
            self.kubeconfig_path = self._requested_kubeconfig
        kubeconfig.write(self.kubeconfig_path, self.url)
        return self

    def stop(self) -> None:
        """Stop serving (ending open watches) and remove a temporary kubeconfig. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        self.api.jobs.stop()
        self.store.close()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # -- observation ------------------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """Requests by verb: get, list, watch, create, update, patch, delete, deletecollection, discovery."""
        return self._log.snapshot()[0]

    def counts_by_resource(self) -> Counter[tuple[str, str]]:
        """Requests by (verb, "group/resource"), e.g. ("list", "apps/deployments"), ("patch", "/configmaps")."""
        return self._log.snapshot()[1]

    def reset_counts(self) -> None:
        """Zero the counters and forget :attr:`requests`."""
        self._log.reset()

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """Every request so far as (method, path, query string), for debugging."""
        return self._log.snapshot()[2]

    def objects(self, *, group: str | None = None, kind: str | None = None,
                namespace: str | None = None) -> list[dict[str, Any]]:
        """A snapshot of stored objects (with apiVersion and kind), optionally filtered."""
        out = []
        for rtype in self.discovery.types():
            if (group is not None and rtype.group != group) or (kind is not None and rtype.kind != kind):
                continue
            for obj in self.store.select(rtype.group, rtype.plural, namespace):
                out.append(self.api.output(rtype, rtype.versions[0], obj) if "kind" not in obj else clone(obj))
        return sorted(out, key=lambda o: (o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                accept: str = "application/json", timeout: float = 10) -> tuple[int, Any]:
        """One HTTP request to the emulator (counted like any other); returns (code, body).

        ``body`` may be bytes, a string, or JSON-able; the answer is decoded JSON when it
        parses, else text. Handy for seeding objects or checking raw API behaviour in tests.
        """
        data = body if isinstance(body, bytes) or body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        headers = {"Content-Type": content_type, "Accept": accept, "User-Agent": "kube-emulator-request/1.0"}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                code, raw = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            code, raw = exc.code, exc.read()
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode("utf-8", "replace")

    def expect_ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """:meth:`request` that must succeed: returns the decoded body of a 2xx answer, and
        raises ``AssertionError`` with the code and the Status otherwise (for tests)."""
        code, out = self.request(method, path, body, **kwargs)
        if not 200 <= code < 300:
            raise AssertionError(f"{method} {path}: HTTP {code}: {out}")
        return out

    def watch(self, path: str, *, count: int | None = None, timeout: float = 5.0,
              accept: str = "application/json") -> list[dict[str, Any]]:
        """The events of a watch on ``path`` (``watch=1`` is added): read until ``count`` events
        arrived, the server ended the stream, or ``timeout`` seconds passed, then closed.

        Give ``resourceVersion=RV`` in ``path`` to replay what happened after RV (no thread
        needed); events that arrive later are waited for until the deadline.
        """
        deadline = time.monotonic() + timeout
        split = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        if not any(k == "watch" for k, _ in query):
            query.append(("watch", "1"))
        target = urllib.parse.urlunsplit(("", "", split.path, urllib.parse.urlencode(query), ""))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        events: list[dict[str, Any]] = []
        try:
            conn.request("GET", target, headers={"Accept": accept, "User-Agent": "kube-emulator-request/1.0"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"watch {path}: HTTP {response.status}: {response.read().decode('utf-8', 'replace')}")
            while count is None or len(events) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                try:
                    line = response.readline()
                except TimeoutError:
                    break
                if not line:
                    break
                events.append(json.loads(line))
        finally:
            conn.close()
        return events

    def compact(self) -> int:
        """Forget the watch event log, as etcd compaction does (older watches get 410)."""
        return self.store.compact()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"KubeEmulator({where})"
