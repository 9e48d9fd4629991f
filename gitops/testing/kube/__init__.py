"""A Kubernetes API server emulator on loopback, for tests of Kubernetes targets.

``python -m gitops.testing.kube --kubeconfig PATH --port 0`` runs it as a process; in
Python use :class:`KubeEmulator` (a context manager), or the pytest fixtures in
:mod:`gitops.testing.kube.fixtures` (``pytest_plugins = ["gitops.testing.kube.fixtures"]``).
What it emulates and how it differs from a real API server: ``docs/kubernetes-emulator.md``.
"""

from __future__ import annotations

from gitops.testing.kube.emulator import KubeEmulator
from gitops.testing.kube.kubeconfig import CONTEXT

__all__ = ["CONTEXT", "KubeEmulator"]
