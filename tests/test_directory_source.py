"""The directory source: URLs, plugin lookup, revisions as content digests, fetch."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import gitops
from gitops.errors import InvalidURLError, RevisionNotFoundError, SourceError
from gitops.manifests import load_tree
from gitops.sources.directory import DirectorySource

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    (root / "apps").mkdir(parents=True)
    (root / "apps" / "a.yaml").write_text(CM.format(name="a"))
    (root / "b.yaml").write_text(CM.format(name="b"))
    (root / ".sourceignore").write_text("*.bak\nscratch/\n")
    return root


def test_open_source_dir_url_absolute(tree: Path) -> None:
    source = gitops.open_source(f"dir:{tree}")
    assert isinstance(source, DirectorySource)
    assert source.url == f"dir:{tree}"
    assert source.root == tree


def test_open_source_triple_slash_url(tree: Path) -> None:
    source = gitops.open_source(f"dir://{tree}")
    assert isinstance(source, DirectorySource) and source.url == f"dir:{tree}"


def test_open_source_bare_path_and_relative_paths(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.parent)
    for url in (str(tree), "config", "./config", "dir:config", "dir:./config/apps/.."):
        source = gitops.open_source(url)
        assert isinstance(source, DirectorySource), url
        assert source.url == f"dir:{tree}", url


def test_missing_path_is_no_such_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match="no such directory") as info:
        gitops.open_source(f"dir:{missing}")
    assert info.value.url == f"dir:{missing}"
    assert str(info.value) == f"dir:{missing}: no such directory"


def test_a_file_is_not_a_directory(tree: Path) -> None:
    with pytest.raises(SourceError, match="no such directory: the path is not a directory"):
        DirectorySource(tree / "b.yaml")


@pytest.mark.parametrize("url", ["dir:", "dir://", "dir://host/path"])
def test_malformed_dir_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        DirectorySource.from_url(url)


def test_resolve_is_a_content_digest(tree: Path) -> None:
    source = DirectorySource(tree)
    revision = source.resolve()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", revision)
    assert source.resolve() == revision
    copy = tree.parent / "copy"
    shutil.copytree(tree, copy)
    assert DirectorySource(copy).resolve() == revision


def test_revision_changes_with_content_not_with_ignored_or_hidden_files(tree: Path) -> None:
    source = DirectorySource(tree)
    first = source.resolve()
    (tree / "b.yaml.bak").write_text("old")
    (tree / "scratch").mkdir()
    (tree / "scratch" / "x.yaml").write_text("not: valid: yaml")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (tree / "apps" / ".notes.yaml").write_text("x")
    assert source.resolve() == first
    (tree / "apps" / "a.yaml").write_text(CM.format(name="changed"))
    second = source.resolve()
    assert second != first
    (tree / "apps" / "c.yaml").write_text(CM.format(name="c"))
    assert source.resolve() not in (first, second)


def test_fetch_returns_the_directory_as_the_artifact(tree: Path) -> None:
    with gitops.open_source(f"dir:{tree}") as source:
        revision = source.resolve()
        artifact = source.fetch(revision)
    assert artifact.url == f"dir:{tree}"
    assert artifact.revision == revision == artifact.digest
    assert artifact.path == tree
    assert artifact.metadata == {}
    assert [r.name for r in load_tree(artifact.path)] == ["a", "b"]


def test_fetch_after_the_directory_changed_explains(tree: Path) -> None:
    source = DirectorySource(tree)
    revision = source.resolve()
    (tree / "b.yaml").write_text(CM.format(name="b2"))
    with pytest.raises(RevisionNotFoundError, match="the directory changed") as info:
        source.fetch(revision)
    assert info.value.url == source.url


def test_fetch_of_a_malformed_revision(tree: Path) -> None:
    with pytest.raises(RevisionNotFoundError, match="not a directory revision"):
        DirectorySource(tree).fetch("main@sha1:" + "0" * 40)


def test_directory_removed_after_opening(tree: Path) -> None:
    source = DirectorySource(tree)
    shutil.rmtree(tree)
    with pytest.raises(SourceError, match="no such directory"):
        source.resolve()


def test_repr_and_viability(tree: Path) -> None:
    source = DirectorySource(tree)
    assert repr(source) == f"DirectorySource('dir:{tree}')"
    assert DirectorySource.viable() == (True, "")
    assert DirectorySource.scheme == "dir"
    assert os.path.isabs(source.url.removeprefix("dir:"))
