"""Run the real ``kubectl`` against a :class:`~gitops.testing.kube.KubeEmulator`, for tests.

Each :class:`Kubectl` has its own ``HOME`` and discovery cache (in ``workdir``), so tests
never share kubectl state or touch the user's ``~/.kube``. ``find_kubectl()`` is None when
kubectl is not installed (the ``kube_kubectl`` fixture then skips the test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitops.testing.kube.emulator import KubeEmulator

__all__ = ["Kubectl", "KubectlFailed", "find_kubectl"]


def find_kubectl() -> str | None:
    """The path of the ``kubectl`` binary on PATH, or None."""
    return shutil.which("kubectl")


class KubectlFailed(AssertionError):
    """kubectl exited non-zero where success was expected; carries the command and its output."""

    def __init__(self, args: tuple[str, ...], done: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
        self.args_used = args
        self.stdout = done.stdout
        self.stderr = done.stderr


class Kubectl:
    """The real kubectl bound to one emulator: ``kubectl("get", "ns").stdout``."""

    def __init__(self, emulator: KubeEmulator, workdir: Path, binary: str | None = None) -> None:
        found = binary or find_kubectl()
        if found is None:
            raise FileNotFoundError("kubectl is not installed (not on PATH)")
        self.binary = found
        self.emulator = emulator
        self.workdir = Path(workdir)

    def command(self, *args: str) -> list[str]:
        """The argument vector for ``args`` (kubeconfig and private cache included)."""
        if self.emulator.kubeconfig_path is None:
            raise RuntimeError("the emulator is not running")
        return [self.binary, "--kubeconfig", str(self.emulator.kubeconfig_path),
                "--cache-dir", str(self.workdir / "kubectl-cache"), *args]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.workdir)}

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with ``check`` a non-zero exit raises :class:`KubectlFailed`."""
        done = subprocess.run(self.command(*args), input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=self.env, check=False)
        if check and done.returncode != 0:
            raise KubectlFailed(args, done)
        return done

    def apply(self, manifest: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``kubectl apply --server-side -f FILE`` of ``manifest`` (YAML text) plus ``extra`` flags."""
        path = self.workdir / f"manifest-{time.monotonic_ns()}.yaml"
        path.write_text(manifest, encoding="utf-8")
        return self("apply", "--server-side", "-f", str(path), *extra, check=check)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running kubectl (``get -w``) with piped text output; the caller ends it."""
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)
