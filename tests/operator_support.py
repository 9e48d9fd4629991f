"""What the operator's cluster tests share: the real kubectl, and an emulator with the CRD.

``operator_emulator`` (module scope) is a fresh API emulator on which ``gitops crds`` output
was applied with ``kubectl apply --server-side``; import it into a test module to use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops.apps import Application
from gitops.operator.crd import crds_yaml
from gitops.operator.status import AppStatus
from gitops.testing.kube import KubeEmulator

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def kubectl(emulator: KubeEmulator, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against ``emulator`` (its own HOME and cache)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    assert emulator.kubeconfig_path is not None
    home = Path(emulator.kubeconfig_path).parent
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(emulator.kubeconfig_path), "--cache-dir", str(home / "cache"), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "HOME": str(home)},
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def operator_emulator() -> Iterator[KubeEmulator]:
    """An emulator of its own, with the Application CRD installed by kubectl."""
    with KubeEmulator() as emulator:
        kubectl(emulator, "apply", "--server-side", "-f", "-", stdin=crds_yaml())
        yield emulator


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    """Poll ``condition`` until it is truthy (returned) or ``timeout`` seconds passed (fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class MemoryStatusStore:
    """A StatusStore in memory that counts its writes (``update`` included)."""

    def __init__(self) -> None:
        self.data: dict[str, AppStatus] = {}
        self.writes = 0

    def read(self, app: Application) -> AppStatus | None:
        return self.data.get(app.key)

    def write(self, app: Application, status: AppStatus) -> None:
        self.writes += 1
        self.data[app.key] = status

    def update(self, app: Application,
               change: Callable[[AppStatus | None], AppStatus]) -> AppStatus:
        status = change(self.read(app))
        self.write(app, status)
        return status
