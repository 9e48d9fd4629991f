"""An API server that goes away: the target says UnreachableError within seconds.

A TCP relay in front of the emulator stands for the network path to the API server:
``cut()`` closes every open connection and the port, as a crashed server or a dropped
route does, so pooled keep-alive connections break too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops import Reconciler
from gitops.errors import TransientError, UnreachableError
from gitops.model import Event, Resource

pytest.importorskip("kubernetes")
pytest.importorskip("gitops.testing.kube")

from gitops.targets.kubernetes import KubernetesTarget


class Relay:
    """A loopback TCP relay to ``upstream`` that can be cut."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self.listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _kubeconfig(path: Path, port: int) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "relay",
        "clusters": [{"name": "relay", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "s3cret-t0ken"}}],
        "contexts": [{"name": "relay", "context": {"cluster": "relay", "user": "u"}}],
    }))
    return str(path)


@pytest.fixture
def relay(kube_emulator_session: Any) -> Iterator[Relay]:
    relay = Relay(("127.0.0.1", kube_emulator_session.port))
    yield relay
    relay.cut()


def _configmap(ns: str, name: str) -> Resource:
    return Resource.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name, "namespace": ns},
                                   "data": {"k": name}})


def test_api_server_gone_mid_sync_is_unreachable_within_seconds(
    relay: Relay, tmp_path: Path
) -> None:
    ns = f"gone-{uuid.uuid4().hex[:8]}"
    target = KubernetesTarget("k8s:", kubeconfig=_kubeconfig(tmp_path / "kc", relay.port),
                              create_namespaces=True)  # default timeouts, real sleeps
    for i in range(5):
        target.apply(_configmap(ns, f"cm-{i}"))
    relay.cut()  # the API server goes away, pooled connections break

    started = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        target.apply(_configmap(ns, "cm-5"))
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f}s to give up"
    error = caught.value
    assert not isinstance(error, TransientError), "an engine would retry it for minutes"
    assert error.url == "k8s:" and "cm-5" in str(error) and "unreachable" in str(error)
    assert "s3cret-t0ken" not in str(error)

    # the rest of a sync fails at once, without waiting for the server again
    started = time.monotonic()
    for i in range(6, 56):
        with pytest.raises(UnreachableError):
            target.apply(_configmap(ns, f"cm-{i}"))
    with pytest.raises(UnreachableError):
        target.live([_configmap(ns, "cm-0").key])
    assert time.monotonic() - started < 1.0
    target.close()


def test_a_closed_port_is_unreachable_after_a_short_retry(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = KubernetesTarget("k8s:", kubeconfig=_kubeconfig(tmp_path / "kc", port),
                              unreachable_timeout=1)
    started = time.monotonic()
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}.*unreachable"):
        target.read_inventory("x")
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 3, elapsed  # retried for about unreachable_timeout, no longer
    attempts = target.stats()["get"]
    assert 3 <= attempts <= 12
    target.close()


def test_the_server_is_tried_again_after_the_pause(relay: Relay, tmp_path: Path) -> None:
    """After ``unreachable_timeout`` seconds of failing fast, requests go out again."""
    clock = [0.0]
    target = KubernetesTarget("k8s:", kubeconfig=_kubeconfig(tmp_path / "kc", relay.port),
                              unreachable_timeout=2, sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    target.client._clock = lambda: clock[0]
    assert target.read_inventory(f"x-{uuid.uuid4().hex[:6]}") is None
    relay.cut()
    with pytest.raises(UnreachableError):
        target.read_inventory("y")
    sent = sum(target.stats().values())
    with pytest.raises(UnreachableError, match="not retried"):
        target.read_inventory("y")
    assert sum(target.stats().values()) == sent  # failed at once, nothing sent
    clock[0] += 2.5
    back = Relay(relay.upstream, relay.port)  # the server is back
    try:
        assert target.read_inventory("y") is None  # tried again, and it answers
    finally:
        back.cut()
        target.close()


def test_a_connect_timeout_is_unreachable(tmp_path: Path) -> None:
    """A server that never completes the handshake (its accept queue is full)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the backlog; further SYNs are dropped, connects hang
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel accepts connections past a full backlog")
    except OSError:
        pass
    finally:
        probe.close()
    target = KubernetesTarget("k8s:", kubeconfig=_kubeconfig(tmp_path / "kc", port),
                              connect_timeout=0.5, unreachable_timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(UnreachableError, match="unreachable"):
            target.read_inventory("x")
        assert time.monotonic() - started < 3
    finally:
        target.close()
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_sync_against_a_server_gone_midway_ends_in_seconds(
    relay: Relay, tmp_path: Path
) -> None:
    """Whatever the engine then does with the rest, the target answers each remaining
    object at once, so 200 objects cost seconds, not 200 rounds of backoff."""
    ns = f"gone-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src"
    root.mkdir()
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    docs += [{"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"cm-{i:03d}", "namespace": ns}} for i in range(200)]
    (root / "all.yaml").write_text(yaml.safe_dump_all(docs))
    target = KubernetesTarget("k8s:", kubeconfig=_kubeconfig(tmp_path / "kc", relay.port))
    applied = []

    def cut_after_ten(event: Event) -> None:
        if event.reason == "Created":
            applied.append(event.key)
            if len(applied) == 10:
                relay.cut()

    started = time.monotonic()
    with Reconciler(str(root), target, name=ns, on_event=cut_after_ten) as rec:
        try:
            result = rec.sync()
        except UnreachableError:
            pass  # the final inventory write could not be sent either
        else:
            assert not result.succeeded
            assert all(isinstance(r.message, str) for r in result.failed)
    elapsed = time.monotonic() - started
    assert len(applied) == 10
    assert elapsed < 15, f"a sync against a dead server took {elapsed:.1f}s"
