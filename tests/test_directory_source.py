"""The directory source: URLs, plugin lookup, revisions as content digests, fetch."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

import gitops
from gitops.errors import InvalidURLError, ManifestError, RevisionNotFoundError, SourceError
from gitops.manifests import load_tree
from gitops.sources.directory import DirectorySource
from gitops.tree import file_sha256, tree_digest

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


# -- a single manifest file ------------------------------------------------------------


def test_a_single_manifest_file_is_a_source(tree: Path) -> None:
    file = tree / "b.yaml"
    before = sorted(p.name for p in tree.iterdir())
    with gitops.open_source(str(file)) as source:
        assert source.url == f"dir:{file}"
        revision = source.resolve()
        alone = tree.parent / "alone"
        alone.mkdir()
        shutil.copy(file, alone / "b.yaml")
        assert revision == tree_digest(alone), "the digest of a folder holding just the file"
        artifact = source.fetch(revision)
        assert artifact.revision == artifact.digest == revision
        assert sorted(p.name for p in artifact.path.iterdir()) == ["b.yaml"]
        assert [r.name for r in load_tree(artifact.path)] == ["b"]
        assert artifact.path.parent != tree and not artifact.path.is_relative_to(tree)
        assert not os.stat(artifact.path / "b.yaml").st_mode & 0o222, "the copy is read-only"
        assert os.stat(artifact.path).st_mode & 0o077 == 0, "the copy is private"
        assert source.fetch(revision) is artifact, "same revision, same artifact"
        copy = artifact.path
    assert not copy.exists(), "close() removes the copy"
    assert sorted(p.name for p in tree.iterdir()) == before, "nothing written next to the file"


def test_a_single_file_source_follows_edits(tree: Path) -> None:
    file = tree / "b.yaml"
    with DirectorySource(file) as source:
        first = source.resolve()
        old = source.fetch(first)
        file.write_text(CM.format(name="b2"))
        # the private copy still holds that revision: it may be served again
        assert source.fetch(first) is old
        second = source.resolve()
        assert second != first
        artifact = source.fetch(second)
        assert [r.name for r in load_tree(artifact.path)] == ["b2"]
        assert not old.path.exists(), "only the newest copy is kept"
        with pytest.raises(RevisionNotFoundError, match="the file changed"):
            source.fetch(first)


def test_a_file_that_is_not_a_manifest_is_refused(tree: Path) -> None:
    notes = tree / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(SourceError, match=r"single-file source must be a manifest"):
        DirectorySource(notes)
    with pytest.raises(InvalidURLError, match="the source is a file"):
        gitops.open_source(f"dir:{tree / 'b.yaml'}#path=x")


# -- path=: a folder within the tree ---------------------------------------------------


def overlay_tree(root: Path) -> None:
    (root / "base").mkdir(parents=True)
    (root / "base" / "cm.yaml").write_text(CM.format(name="base"))
    (root / "overlays" / "prod").mkdir(parents=True)
    (root / "overlays" / "prod" / "cm.yaml").write_text(CM.format(name="prod"))


def test_path_option_renders_a_folder_and_keeps_the_whole_tree_readable(tmp_path: Path) -> None:
    overlay_tree(tmp_path / "repo")
    root = tmp_path / "repo"
    for source in (gitops.open_source(f"dir:{root}#path=overlays/prod"),
                   gitops.open_source(f"dir:{root}", path="overlays/prod"),
                   DirectorySource(root, path="./overlays//prod/")):
        with source:
            assert source.url == f"dir:{root}#path=overlays/prod"
            artifact = source.fetch(source.resolve())
            assert artifact.path == root / "overlays" / "prod"
            assert artifact.root == root and artifact.tree == root
            assert [r.name for r in load_tree(artifact.path)] == ["prod"]


def test_with_path_a_change_anywhere_in_the_tree_is_a_new_revision(tmp_path: Path) -> None:
    overlay_tree(tmp_path / "repo")
    root = tmp_path / "repo"
    (root / "overlays" / ".hidden").mkdir()
    (root / "overlays" / ".hidden" / "x.yaml").write_text(CM.format(name="x"))
    with DirectorySource(root, path="overlays/prod") as source:
        first = source.resolve()
        (root / "base" / "cm.yaml").write_text(CM.format(name="base-2"))  # what ../base reads
        second = source.resolve()
        assert second != first
    with DirectorySource(root, path="overlays/.hidden") as hidden:
        before = hidden.resolve()
        (root / "overlays" / ".hidden" / "x.yaml").write_text(CM.format(name="x-2"))
        assert hidden.resolve() != before, "a hidden path= folder still counts"


@pytest.mark.parametrize(("url", "options", "message"), [
    ("dir:{root}#path=../etc", {}, r"option path: .*must stay inside"),
    ("dir:{root}", {"path": "/etc"}, r"option path: .*must be a relative path"),
    ("dir:{root}#colour=blue", {}, r"option colour: Extra inputs.*known options: path"),
    ("dir:{root}", {"colour": "hunter2"}, r"option colour: "),
    ("dir:{root}#path", {}, r"written name=value"),
    ("dir:{root}#path=a&path=b", {}, r"given twice"),
])
def test_invalid_options_are_one_error_naming_url_and_option(
    tree: Path, url: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidURLError, match=message) as info:
        gitops.open_source(url.format(root=tree), **options)
    assert str(tree) in str(info.value) and "hunter2" not in str(info.value)
    assert "blue" not in str(info.value)


def test_a_missing_path_folder_is_revision_not_found(tree: Path) -> None:
    with pytest.raises(RevisionNotFoundError, match="path nope is not a directory"):
        DirectorySource(tree, path="nope")


def test_a_bare_path_is_taken_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "a#path=b"
    odd.mkdir()
    (odd / "x.yaml").write_text(CM.format(name="x"))
    monkeypatch.chdir(tmp_path)
    with gitops.open_source("a#path=b") as source:
        assert source.fetch(source.resolve()).path == odd


# -- revisions: stat cache -------------------------------------------------------------


def test_fetch_of_the_same_revision_is_the_same_artifact(tree: Path) -> None:
    with DirectorySource(tree) as source:
        revision = source.resolve()
        assert source.fetch(revision) is source.fetch(revision)


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(tree: Path) -> None:
    """File systems stamp with a coarse clock: a fresh file's stat cannot be trusted."""
    file = tree / "b.yaml"
    with DirectorySource(tree) as source:
        first = source.resolve()
        info = file.stat()
        file.write_text(CM.format(name="c"))  # same size as "b"
        os.utime(file, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert source.resolve() != first


def test_unchanged_old_files_are_not_read_again(tree: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    past = time.time() - 3600
    for file in tree.rglob("*"):
        os.utime(file, (past, past))
    time.sleep(0.01)
    with DirectorySource(tree) as source:
        first = source.resolve()
        reads: list[str] = []
        real = file_sha256

        def counting(path: str) -> str:
            reads.append(path)
            return real(path)

        monkeypatch.setattr("gitops.sources.statdigest.file_sha256", counting)
        assert source.resolve() == first
        # ctime is "now" (utime changed it), so the stat cannot be trusted yet; wait it out
        monkeypatch.setattr("gitops.sources.statdigest.RACY_SECONDS", -1.0)
        source.resolve()
        reads.clear()
        assert source.resolve() == first and reads == []
        (tree / "apps" / "a.yaml").write_text(CM.format(name="a2"))
        assert source.resolve() != first and reads == [str(tree / "apps" / "a.yaml")]


def test_an_unreadable_file_names_itself(tree: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (tree / "b.yaml").chmod(0)
    with DirectorySource(tree) as source, pytest.raises(ManifestError, match=r"b\.yaml"):
        source.resolve()


def test_a_single_file_over_the_limit_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    from gitops.manifests import DEFAULT_LIMITS

    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:  # sparse: no disk used
        handle.truncate(DEFAULT_LIMITS.max_file_bytes + 1)
    with pytest.raises(ManifestError, match=r"big\.yaml.*over the limit"):
        DirectorySource.from_url(str(big)).resolve()
