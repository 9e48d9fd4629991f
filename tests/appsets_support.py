"""What the ApplicationSet tests share: a Deployment manifest and a git daemon of their own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from gitops.testing.gitserver import GitDaemon

#: ``web:{version}``; the emulator's workload controller reads the rollout annotation
#: (``complete``, ``progressing``, ``failed``): ``failed`` makes it Degraded
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  annotations: {{kube-emulator.gitops.dev/rollout: {mode}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "web:{version}"}}]}}
"""


def deployment(version: str, mode: str = "complete") -> str:
    """The Deployment ``web`` running image ``web:VERSION``."""
    return DEPLOYMENT.format(version=version, mode=mode)


@contextlib.contextmanager
def served(root: Path) -> Iterator[GitDaemon]:
    """``git daemon`` serving ``root/served``; sources cache under ``root/cache``."""
    before = os.environ.get("GITOPS_CACHE_DIR")
    os.environ["GITOPS_CACHE_DIR"] = str(root / "cache")
    (root / "served").mkdir(exist_ok=True)
    try:
        with GitDaemon(root / "served").start() as daemon:
            yield daemon
    finally:
        if before is None:
            os.environ.pop("GITOPS_CACHE_DIR", None)
        else:
            os.environ["GITOPS_CACHE_DIR"] = before
