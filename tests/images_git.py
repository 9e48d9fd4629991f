"""Shared pieces of the image update tests: Git repositories to update, automations to run."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.images.latest import LatestImage
from gitops.images.spec import ImageUpdateAutomation
from gitops.testing.gitserver import WorkRepo, git_env

__all__ = ["Bare", "automation", "choice", "marker", "new_bare"]

_names = itertools.count()


def marker(ref: str) -> str:
    return json.dumps({"$imagepolicy": ref})


def choice(policy: str, image: str, tag: str, digest: str | None = None) -> LatestImage:
    return LatestImage(policy, image, tag, digest)


@dataclass
class Bare:
    """A bare repository under a served folder, and a work repository that publishes to it."""

    path: Path
    name: str
    work: WorkRepo
    home: Path

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(["git", "-C", os.fspath(self.path), *args], capture_output=True,
                              env=git_env(self.home, env), check=False)
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def head(self, branch: str = "main") -> str | None:
        try:
            return self.git("rev-parse", "--verify", "-q", f"refs/heads/{branch}").strip()
        except RuntimeError:
            return None

    def show(self, rev: str, path: str) -> str:
        return self.git("show", f"{rev}:{path}")

    def someone_pushes(self, files: dict[str, str], message: str = "someone else") -> str:
        """Another writer: fetch the branch, commit ``files`` on it, push."""
        self.work.git("pull", "-q", "--ff-only", os.fspath(self.path), "main")
        self.work.write(files)
        sha = self.work.commit(message)
        self.work.git("push", "-q", os.fspath(self.path), "HEAD:refs/heads/main")
        return sha


def new_bare(served: Path, home: Path, files: dict[str, str], *, tmp: Path) -> Bare:
    """A published repository with ``files`` on ``main`` (receive-pack allowed over HTTP)."""
    name = f"images-{os.getpid()}-{next(_names)}.git"
    work = WorkRepo(tmp / f"work-{name}", home=home)
    work.write(files)
    work.commit("initial")
    bare = served / name
    work.push(bare)
    bare_repo = Bare(bare, name, work, home)
    bare_repo.git("config", "http.receivepack", "true")
    return bare_repo


def automation(url: str, branch: str = "main", **git: Any) -> ImageUpdateAutomation:
    """An ImageUpdateAutomation ``default/auto`` for ``url``; ``git`` adds spec.git fields
    (``push``, ``commit`` overrides) and ``update`` the spec.update mapping."""
    update = git.pop("update", {})
    commit = {"author": {"name": "Image Bot", "email": "bot@example.com"},
              **git.pop("commit", {})}
    return ImageUpdateAutomation.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImageUpdateAutomation",
        "metadata": {"name": "auto", "namespace": "default"},
        "spec": {"git": {"url": url, "checkout": {"ref": {"branch": branch}},
                         "commit": commit, **git},
                 "update": update},
    })
