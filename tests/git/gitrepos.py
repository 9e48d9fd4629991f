"""Shared pieces of the Git tests: repositories as tests see them, and skipping rules."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.testing.gitserver import WorkRepo

__all__ = ["APPS", "Fixture", "Published", "require"]


def require(program: str, package: str) -> str:
    """The program's path; skip (locally) or fail (CI=true) when it is missing."""
    found = shutil.which(program) or (program if os.path.isfile(program) else None)
    if found:
        return found
    message = f"{program} is not installed (apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the Git tests (.ci/run installs it)")
    pytest.skip(message)


@dataclass
class Published:
    """A work repository and the bare repository it is published to (``name`` in ``root``)."""

    work: WorkRepo
    name: str
    bare: Path

    def publish(self) -> None:
        self.work.push(self.bare)

    def commit(self, files: dict[str, str | bytes], message: str = "change",
               **kwargs: object) -> str:
        self.work.write(files)
        sha = self.work.commit(message, **kwargs)  # type: ignore[arg-type]
        self.publish()
        return sha


APPS = {
    "apps/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    "apps/config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: shop\n"
        "data:\n  color: blue\n"
    ),
    "docs/README.md": "# not deployed\n",
}


@dataclass
class Fixture:
    """A published repository with branches, tags and history (read-only for tests)."""

    name: str
    first: str  # commit 1
    second: str  # commit 2 (main)
    dev: str  # commit 3, on branch dev only
    tag_object: str  # the annotated tag v1.1.0's object id
