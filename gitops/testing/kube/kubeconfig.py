"""The kubeconfig the emulator writes: one cluster, one user, context ``gitops-emulator``.

Written atomically (a temporary file renamed into place) so that a process waiting for
the file never reads half of it: its existence means the server is ready.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

__all__ = ["CONTEXT", "TOKEN", "render", "write"]

CONTEXT = "gitops-emulator"
TOKEN = "gitops-emulator-token"  # a dummy: the emulator accepts any credentials


def render(server: str) -> str:
    """The kubeconfig text for an API server at ``server``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        "current-context": CONTEXT,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: Path, server: str) -> None:
    """Write the kubeconfig for ``server`` to ``path`` atomically (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render(server))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
