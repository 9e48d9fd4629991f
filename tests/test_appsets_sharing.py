"""SharedSources: one Git source per repository for many generated Applications."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops import Reconciler
from gitops.apps.spec import Application
from gitops.appsets.sharing import FolderSource, SharedSources
from gitops.errors import RevisionNotFoundError
from gitops.plugins import open_target
from gitops.sources.git import GitSource
from gitops.testing.gitserver import GitDaemon, WorkRepo

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata: {{v: '{v}'}}\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WorkRepo, Path, str]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    work = WorkRepo(tmp_path / "work", home=tmp_path)
    work.write({f"apps/{n}/cm.yaml": CM.format(name=n, v=1) for n in ("a", "b")})
    work.commit("first")
    (tmp_path / "served").mkdir()
    work.push(tmp_path / "served" / "r.git")
    with GitDaemon(tmp_path / "served").start() as daemon:
        yield work, tmp_path / "served" / "r.git", daemon.url("r.git")


def _app(name: str, url: str) -> Application:
    return Application.model_validate({"metadata": {"name": name},
                                       "spec": {"source": {"url": url}, "target": {"url": "mock:"}}})


def test_one_resolve_per_round_and_folder_digests(repo: tuple[WorkRepo, Path, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    work, bare, url = repo
    calls: list[str] = []
    real = GitSource.resolve

    def counting(self: GitSource) -> str:
        calls.append(self.url)
        return real(self)

    monkeypatch.setattr(GitSource, "resolve", counting)
    sources = SharedSources()
    apps = [_app(f"{n}-{i}", f"{url}@main#path=apps/{n}") for n in ("a", "b") for i in range(3)]
    try:
        reconcilers = [Reconciler(sources.source_for(app), open_target("mock:"), **app.reconciler_kwargs())
                       for app in apps]
        plans = [r.plan() for r in reconcilers]
        assert [p.changes[0].key.name for p in plans] == ["a", "a", "a", "b", "b", "b"]
        assert plans[0].source == f"{url}@main#path=apps/a"
        assert len(calls) == 1  # six applications, one question to the remote
        folders = [r.source for r in reconcilers if isinstance(r.source, FolderSource)]
        assert len(folders) == 6
        first = {f.path: sources.folder_digest(f, plans[0].revision) for f in folders}
        work.write({"apps/b/cm.yaml": CM.format(name="b", v=2)})
        work.commit("change b")
        work.push(bare)
        assert reconcilers[0].source.resolve() == plans[0].revision  # same round: not asked again
        sources.refresh()
        revision = reconcilers[0].source.resolve()
        assert revision != plans[0].revision and len(calls) == 2
        now = {f.path: sources.folder_digest(f, revision) for f in folders}
        assert now["apps/a"] == first["apps/a"] and now["apps/b"] != first["apps/b"]
    finally:
        sources.close()


def test_a_missing_folder_and_unshared_urls(repo: tuple[WorkRepo, Path, str], tmp_path: Path) -> None:
    _, _, url = repo
    sources = SharedSources()
    try:
        missing = sources.source_for(_app("x", f"{url}@main#path=apps/nope"))
        assert isinstance(missing, FolderSource)
        with pytest.raises(RevisionNotFoundError, match="path 'apps/nope' does not exist"):
            missing.fetch(missing.resolve())
        (tmp_path / "d").mkdir()
        plain = sources.source_for(_app("y", f"dir:{tmp_path / 'd'}"))
        assert not isinstance(plain, FolderSource)
        assert sources.folder_digest(plain, plain.resolve()) is None
        semver = sources.source_for(_app("z", f"{url}#path=apps/a&semver=^1"))
        assert not isinstance(semver, FolderSource)
    finally:
        sources.close()
