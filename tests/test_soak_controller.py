"""Soak: ``gitops controller`` on the API emulator, Applications created and deleted again
and again. The controller process's threads and descriptors, the emulator's open
connections and watches, and the ``/metrics`` series come back to their baseline.

``GITOPS_SOAK=1`` runs many more cycles (``soak_support.cycles``).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import Configuration
from operator_support import needs_kubectl, operator_emulator, wait_for
from soak_support import cycles

from gitops.testing.gitserver import free_port
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]

pytestmark = needs_kubectl

NAMESPACE = "soak"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: soak}}\ndata: {{a: b}}\n"
APPS = f"/apis/gitops.dev/v1alpha1/namespaces/{NAMESPACE}/applications"


class Process:
    """A ``gitops controller`` process serving ``/metrics``."""

    def __init__(self, emulator: KubeEmulator, tmp: Path) -> None:
        assert emulator.kubeconfig_path is not None
        self.port = free_port()
        self.log = (tmp / "controller.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
             "controller", "--kubeconfig", str(emulator.kubeconfig_path), "--workers", "2",
             "--metrics-addr", f"127.0.0.1:{self.port}", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=self.log,
            env={**os.environ, "GITOPS_CACHE_DIR": str(tmp / "cache")})

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def held(self) -> tuple[int, int]:
        """The process's threads and open file descriptors."""
        pid = self.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        threads = int(next(line.split()[1] for line in status.splitlines()
                           if line.startswith("Threads:")))
        return threads, len(os.listdir(f"/proc/{pid}/fd"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        finally:
            self.log.close()


@pytest.fixture
def controller(operator_emulator: KubeEmulator, tmp_path: Path) -> Iterator[Process]:
    namespaces = operator_emulator.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
    if namespaces[0] == 404:
        operator_emulator.expect_ok("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    process = Process(operator_emulator, tmp_path)
    try:
        wait_for(lambda: _serving(process), 20, "the controller serving /metrics")
        yield process
    finally:
        process.stop()


def _serving(process: Process) -> bool:
    try:
        process.metrics()
    except OSError:
        return False
    return True


def test_a_watch_its_client_closed_ends_on_the_emulator(
        operator_emulator: KubeEmulator) -> None:
    """A real API server ends a watch when its client goes; the emulator did only at its
    next write (an event, or the timeout minutes later), so every watch a closed target
    had opened kept a thread and a socket meanwhile."""
    emulator = operator_emulator
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=true&timeoutSeconds=300"
    before = threading.active_count()
    for _ in range(cycles(10, 200)):
        connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
        connection.request("GET", path)
        answer = connection.getresponse()
        assert answer.status == 200
        connection.close()
    wait_for(lambda: threading.active_count() <= before, 5, "the watches ended")


def test_applications_created_and_deleted_leave_the_controller_as_it_was(
        operator_emulator: KubeEmulator, controller: Process, tmp_path: Path) -> None:
    emulator = operator_emulator

    def cycle(number: int) -> None:
        name = f"app-{number}"
        source = tmp_path / name
        source.mkdir()
        (source / "cm.yaml").write_text(CM.format(name=f"cm-{number}"))
        emulator.expect_ok("POST", APPS, {
            "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"source": {"url": f"dir:{source}"}, "target": {"url": "k8s:"},
                     "interval": "1h", "prune": True}})
        series = f'app="{NAMESPACE}/{name}"'
        wait_for(lambda: series in controller.metrics(), 20, f"{name} reconciled")
        emulator.expect_ok("DELETE", f"{APPS}/{name}")
        wait_for(lambda: series not in controller.metrics(), 20, f"{name} forgotten")

    cycle(0)
    (threads, fds), watches = controller.held(), serving(watch=True)
    count = cycles(5, 100)
    for number in range(1, count + 1):
        cycle(number)
    # the worker pools start their threads lazily (at most two more, not one a cycle)
    assert controller.held()[0] <= threads + 2 < threads + count
    # idle connections stay pooled, at most the client's pool size (measured: 15 to 24
    # descriptors over 100 cycles, from 13)
    assert controller.held()[1] <= fds + Configuration().connection_pool_maxsize + 2
    # each watch the emulator serves holds a thread: those of the deleted Applications'
    # targets (the owned kinds, the inventories) ended with them
    wait_for(lambda: serving(watch=True) <= watches, 5, "the deleted ones' watches ended")
    assert 'app="' not in controller.metrics()


def serving(*, watch: bool) -> int:
    """How many requests the emulator (in this process) is serving now: watches, or not."""
    count = 0
    for frame in sys._current_frames().values():
        while frame is not None:
            handler = frame.f_locals.get("self")
            line = getattr(handler, "requestline", None)
            if isinstance(line, str):
                count += ("watch=true" in line) == watch
                break
            frame = frame.f_back  # type: ignore[assignment]
    return count
