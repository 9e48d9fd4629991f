"""Throttling, server errors, 403 and timeouts, injected by a proxy in front of the emulator."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gitops import Reconciler
from gitops.errors import (
    ApplyError,
    AuthenticationError,
    ConflictError,
    TargetAuthenticationError,
    TargetError,
    TransientError,
    UnreachableError,
)
from gitops.model import Inventory, Outcome, Resource, ResourceKey

pytest.importorskip("kubernetes")
pytest.importorskip("gitops.testing.kube")

from gitops.targets.kubernetes import KubernetesTarget

TOKEN = "kube-t0ken-abc123"


@dataclass
class Fault:
    """Answer ``times`` requests matching ``method`` and ``path_part`` with ``status``."""

    method: str
    path_part: str
    status: int
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    message: str = ""
    body: bytes | None = None  # instead of a Status


class FaultProxy(ThreadingHTTPServer):
    """Forwards to the emulator, except for requests a fault matches."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path_part in path:
                fault.times -= 1
                return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append((self.command, self.path))
        fault = self.server.fault_for(self.command, self.path)
        if fault is not None:
            time.sleep(fault.delay)
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "code": fault.status, "reason": http.client.responses[fault.status],
                      "message": fault.message or f"injected {fault.status}"}
            body = fault.body if fault.body is not None else json.dumps(status).encode()
            self._reply(fault.status, body,
                        {"Retry-After": fault.retry_after} if fault.retry_after else {})
            return
        upstream = http.client.HTTPConnection(self.server.upstream.hostname or "",
                                              self.server.upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        self._reply(response.status, response.read(),
                    {"Content-Type": response.getheader("Content-Type") or "application/json"})
        upstream.close()

    def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle


@pytest.fixture
def proxy(kube_emulator_session: Any) -> Iterator[FaultProxy]:
    server = FaultProxy(kube_emulator_session.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def kubeconfig(proxy: FaultProxy, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
        "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "u"}}],
    }))
    return str(path)


def _source(root: Path, ns: str) -> str:
    root.mkdir()
    (root / "all.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": ns},
         "data": {"k": "v"}},
    ]))
    return str(root)


def test_reads_retry_throttling_honouring_retry_after(proxy: FaultProxy, kubeconfig: str) -> None:
    slept: list[float] = []
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, sleep=slept.append)
    proxy.faults = [Fault("GET", "/configmaps/gitops-inventory-", 429, times=2, retry_after="3"),
                    Fault("GET", "/api/v1", 503, times=1)]
    assert target.is_namespaced("", "ConfigMap") is True
    assert target.read_inventory("throttled") is None
    assert slept == [0.2, 3.0, 3.0]  # backoff for the 503, then the server's Retry-After


def test_reads_give_up_after_the_retries(proxy: FaultProxy, kubeconfig: str) -> None:
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, retries=2, sleep=lambda _s: None)
    proxy.faults = [Fault("GET", "/api/v1", 500, times=10)]
    with pytest.raises(TargetError, match="500") as caught:
        target.is_namespaced("", "ConfigMap")
    assert isinstance(caught.value, TransientError)
    assert len(proxy.seen) == 3


def test_applies_are_retried_by_the_engine_with_the_servers_delay(
    proxy: FaultProxy, kubeconfig: str, tmp_path: Path
) -> None:
    ns = "faults-apply"
    slept: list[float] = []
    proxy.faults = [Fault("PATCH", f"/namespaces/{ns}/configmaps/cm", 503, times=1,
                          retry_after="2")]
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig)
    with Reconciler(_source(tmp_path / "src", ns), target, name="faults",
                    sleep=slept.append) as rec:
        result = rec.sync()
    assert result.succeeded, [r.message for r in result.failed]
    retried = next(r for r in result.results if r.change.key.kind == "ConfigMap")
    assert retried.attempts == 2 and slept == [2.0]


def test_forbidden_is_reported_per_object_and_not_retried(
    proxy: FaultProxy, kubeconfig: str
) -> None:
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig)
    proxy.faults = [Fault("PATCH", "/clusterroles/", 403, times=5)]
    role = Resource.from_manifest({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "forbidden-role"}, "rules": []})
    with pytest.raises(ApplyError, match=r"ClusterRole.*403 Forbidden: injected 403") as caught:
        target.apply(role)
    assert not isinstance(caught.value, TransientError)
    proxy.faults = [Fault("GET", "/configmaps", 403, times=5)]
    with pytest.raises(TargetError, match="403"):
        target.read_inventory("forbidden")


def test_every_request_has_a_timeout(proxy: FaultProxy, kubeconfig: str) -> None:
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, timeout=0.3, retries=0)
    proxy.faults = [Fault("GET", "/api/v1", 200, delay=1.5)]
    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer in time") as caught:
        target.is_namespaced("", "ConfigMap")
    assert time.monotonic() - started < 1.2
    # connected, but slow: worth retrying, not a reason to give up on the server
    assert not isinstance(caught.value, UnreachableError)
    assert isinstance(caught.value, TargetError) and caught.value.url == "k8s:"


def test_a_failed_sync_is_reported_without_half_applying(
    proxy: FaultProxy, kubeconfig: str, tmp_path: Path
) -> None:
    ns = "faults-validation"
    proxy.faults = [Fault("PATCH", "/namespaces/" + ns, 422, times=1)]  # the dry run fails
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig)
    with Reconciler(_source(tmp_path / "src", ns), target, name="faults-v") as rec:
        result = rec.sync()
    assert not result.succeeded
    assert {r.outcome for r in result.results} == {Outcome.FAILED, Outcome.SKIPPED}
    assert not [p for m, p in proxy.seen if m == "PATCH" and "dryRun" not in p]


def _role(name: str) -> Resource:
    return Resource.from_manifest({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": []})


def test_refused_credentials_are_one_authentication_error(
    proxy: FaultProxy, kubeconfig: str
) -> None:
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig)
    proxy.faults = [Fault("GET", "/configmaps", 401, message="Unauthorized")]
    with pytest.raises(TargetAuthenticationError) as read:
        target.read_inventory("auth")
    proxy.faults = [Fault("PATCH", "/clusterroles/", 401, message="Unauthorized")]
    with pytest.raises(AuthenticationError) as applied:
        target.apply(_role("auth-role"))
    anonymous = 'clusterroles "x" is forbidden: User "system:anonymous" cannot patch resource'
    proxy.faults = [Fault("PATCH", "/clusterroles/", 403, message=anonymous)]
    with pytest.raises(TargetAuthenticationError) as nobody:
        target.apply(_role("auth-role"))
    for caught in (read, applied, nobody):
        assert caught.value.url == "k8s:" and isinstance(caught.value, TargetError)
        assert TOKEN not in str(caught.value)
    assert "ClusterRole.rbac.authorization.k8s.io/auth-role" in str(applied.value)
    assert not isinstance(applied.value, TransientError)


def test_every_error_carries_the_target_url(
    proxy: FaultProxy, kubeconfig: str, tmp_path: Path
) -> None:
    url = "k8s://proxy"
    target = KubernetesTarget(url, kubeconfig=kubeconfig, retries=0)
    cm = Resource.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "c", "namespace": "default"}})
    errors: list[TargetError] = []

    def expect(call: Any, error: type[Exception], *faults: Fault) -> None:
        proxy.faults = list(faults)
        with pytest.raises(error) as caught:
            call()
        assert isinstance(caught.value, TargetError)
        errors.append(caught.value)

    expect(lambda: target.live([cm.key]), TransientError, Fault("GET", "/api/v1", 503))
    expect(lambda: target.apply(cm), ApplyError,
           Fault("PATCH", "/configmaps/c", 422, message="invalid"))
    expect(lambda: target.apply(cm), ConflictError,
           Fault("PATCH", "/configmaps/c", 409, message="precondition failed"))
    expect(lambda: target.apply(cm), TransientError, Fault("PATCH", "/configmaps/c", 429))
    expect(lambda: target.delete(cm.key), ApplyError, Fault("DELETE", "/configmaps/c", 500))
    expect(lambda: target.read_inventory("u"), TargetError, Fault("GET", "/configmaps", 403))
    expect(lambda: target.write_inventory("u", Inventory({}, "r")), TargetError,
           Fault("POST", "/configmaps", 422), Fault("GET", "/configmaps", 404))
    expect(lambda: target.check([Resource.from_manifest({
        "apiVersion": "x.example.com/v1", "kind": "X", "metadata": {"name": "x"}})]),
        TargetError, Fault("GET", "/apis", 500))
    assert [e.url for e in errors] == [url] * len(errors)
    bad = KubernetesTarget(url, kubeconfig=kubeconfig, retries=0)
    proxy.faults = [Fault("GET", "/configmaps/gitops-inventory-bad", 200,
                          body=b'{"kind": "ConfigMap", "metadata": {"name": "x"}}')]
    with pytest.raises(TargetError, match="not a usable gitops inventory") as corrupt:
        bad.read_inventory("bad")
    assert corrupt.value.url == url
    assert ResourceKey("", "ConfigMap", "default", "c") == cm.key


def test_credentials_echoed_in_a_response_body_are_never_shown(
    proxy: FaultProxy, kubeconfig: str
) -> None:
    target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, retries=0)
    page = (f"<html>bad gateway for request with Authorization: Bearer {TOKEN} and "
            f"token={TOKEN} and Basic dXNlcjpodW50ZXIy</html>").encode()
    proxy.faults = [Fault("GET", "/api/v1", 502, body=page)]
    with pytest.raises(TargetError, match="bad gateway") as caught:
        target.is_namespaced("", "ConfigMap")
    assert TOKEN not in str(caught.value) and "dXNlcjpodW50ZXIy" not in str(caught.value)
