"""Target plugins: where live state lives (file tree, in-memory mock, Kubernetes)."""

from gitops.targets.base import Target

__all__ = ["Target"]
