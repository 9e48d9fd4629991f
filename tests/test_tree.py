"""The artifact-tree walker: order, hidden files, .sourceignore, symlinks, digests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import ManifestError
from gitops.tree import is_manifest_path, tree_digest, walk


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def relpaths(root: Path) -> list[str]:
    return [item.relpath for item in walk(root)]


def test_walk_yields_sorted_relative_posix_paths(tmp_path: Path) -> None:
    names = ["b.yaml", "a/z.yaml", "a.yaml", "a-b.yaml", "a/b/c.yaml", "B.yaml", "ab/x.json"]
    write(tmp_path, dict.fromkeys(names, "x"))
    found = list(walk(tmp_path))
    assert [f.relpath for f in found] == sorted(names)
    for item in found:
        assert item.path.is_absolute()
        assert item.path == (tmp_path / item.relpath).resolve()


def test_hidden_files_and_directories_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".git/config": "x",
            ".hidden.yaml": "x",
            "app/.env": "x",
            "app/.cache/deep.yaml": "x",
            "app/web.yaml": "x",
        },
    )
    assert relpaths(tmp_path) == ["app/web.yaml"]


def test_root_sourceignore_uses_gitignore_syntax(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".sourceignore": "# comment\n*.txt\n!keep.txt\nbuild/\n/rootonly.yaml\n",
            "a.txt": "x",
            "keep.txt": "x",
            "sub/b.txt": "x",
            "build/out.yaml": "x",
            "sub/build/out.yaml": "x",
            "rootonly.yaml": "x",
            "sub/rootonly.yaml": "x",
            "app.yaml": "x",
        },
    )
    assert relpaths(tmp_path) == ["app.yaml", "keep.txt", "sub/rootonly.yaml"]


def test_nested_sourceignore_is_relative_to_its_directory(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".sourceignore": "*.gen.yaml\n",
            "local.yaml": "x",
            "top.gen.yaml": "x",
            "sub/.sourceignore": "/local.yaml\n!keep.gen.yaml\ntmp/\n",
            "sub/local.yaml": "x",
            "sub/deeper/local.yaml": "x",
            "sub/keep.gen.yaml": "x",
            "sub/other.gen.yaml": "x",
            "sub/tmp/x.yaml": "x",
            "tmp/x.yaml": "x",
        },
    )
    assert relpaths(tmp_path) == [
        "local.yaml",
        "sub/deeper/local.yaml",
        "sub/keep.gen.yaml",
        "tmp/x.yaml",
    ]


def test_an_ignored_directory_is_not_entered(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".sourceignore": "vendor/\n",
            "vendor/.sourceignore": "!*.yaml\n",
            "vendor/lib.yaml": "x",
            "app.yaml": "x",
        },
    )
    assert relpaths(tmp_path) == ["app.yaml"]


def test_invalid_sourceignore_pattern_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"sub/.sourceignore": "ok.txt\n!\n", "sub/a.yaml": "x"})
    with pytest.raises(ManifestError, match="invalid pattern") as info:
        relpaths(tmp_path)
    assert info.value.path == "sub/.sourceignore"


def test_symlink_to_a_file_inside_the_root_is_read_as_that_file(tmp_path: Path) -> None:
    write(tmp_path, {"real/app.yaml": "kind: x"})
    (tmp_path / "link.yaml").symlink_to("real/app.yaml")
    found = {f.relpath: f.path for f in walk(tmp_path)}
    assert found["link.yaml"] == (tmp_path / "real/app.yaml").resolve()
    assert found["link.yaml"].read_text() == "kind: x"


@pytest.mark.parametrize("name", ["evil.yaml", "evil.yml", "evil.json"])
def test_manifest_symlink_leading_outside_the_root_is_refused(tmp_path: Path, name: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret.yaml"
    root.mkdir()
    outside.write_text("password: hunter2")
    (root / "sub").mkdir()
    (root / "sub" / name).symlink_to(outside)
    with pytest.raises(ManifestError, match="symlink leads outside the source root") as info:
        relpaths(root)
    assert info.value.path == f"sub/{name}"
    assert "hunter2" not in str(info.value)


def test_other_symlinks_leading_outside_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (root / "notes.txt").symlink_to(tmp_path / "notes.txt")
    (root / "a.yaml").write_text("x")
    assert relpaths(root) == ["a.yaml"]


def test_relative_symlink_escaping_with_dotdot_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "x.yaml").write_text("x")
    (root / "a" / "x.yaml").symlink_to("../../x.yaml")
    with pytest.raises(ManifestError, match="outside"):
        relpaths(root)


def test_dangling_manifest_symlink_is_refused_other_skipped(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    assert relpaths(tmp_path) == []
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(ManifestError, match="its target does not exist") as info:
        relpaths(tmp_path)
    assert info.value.path == "gone.yaml"


def test_symlink_loops_are_refused_for_manifests_skipped_otherwise(tmp_path: Path) -> None:
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    assert relpaths(tmp_path) == []
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    with pytest.raises(ManifestError, match="symlink cannot be followed") as info:
        relpaths(tmp_path)
    assert info.value.path == "a.yaml"


def test_ignored_or_hidden_symlinks_are_never_examined(tmp_path: Path) -> None:
    (tmp_path / ".sourceignore").write_text("evil.yaml\n")
    (tmp_path / "evil.yaml").symlink_to("/etc/hostname")
    (tmp_path / ".evil.yaml").symlink_to("/etc/hostname")
    assert relpaths(tmp_path) == []


def test_symlinked_directories_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, {"real/a.yaml": "x"})
    write(tmp_path, {"outside/b.yaml": "x"})
    (root / "inner").symlink_to(root / "real")
    (root / "outer").symlink_to(tmp_path / "outside")
    (root / "loop").symlink_to(root)
    assert relpaths(root) == ["real/a.yaml"]


def test_walking_through_a_symlinked_root_works(tmp_path: Path) -> None:
    write(tmp_path, {"real/a.yaml": "x", "real/b/c.yaml": "y"})
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "l.yaml").symlink_to("b/c.yaml")
    assert relpaths(tmp_path / "alias") == ["a.yaml", "b/c.yaml", "l.yaml"]


def test_missing_root_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read directory"):
        relpaths(tmp_path / "missing")


def test_is_manifest_path() -> None:
    assert is_manifest_path("a/b.yaml") and is_manifest_path("x.yml") and is_manifest_path("j.json")
    assert not is_manifest_path("README.md") and not is_manifest_path("a.YAML")


class TestTreeDigest:
    def test_format_and_stability(self, tmp_path: Path) -> None:
        write(tmp_path, {"a.yaml": "1", "sub/b.yaml": "2"})
        first = tree_digest(tmp_path)
        assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
        assert tree_digest(tmp_path) == first

    def test_independent_of_where_the_tree_lives(self, tmp_path: Path) -> None:
        files = {"a.yaml": "1", "sub/b.yaml": "2"}
        write(tmp_path / "one", files)
        write(tmp_path / "two", files)
        assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")

    def test_changes_with_content_and_names(self, tmp_path: Path) -> None:
        write(tmp_path, {"a.yaml": "1", "sub/b.yaml": "2"})
        first = tree_digest(tmp_path)
        (tmp_path / "a.yaml").write_text("1 ")
        second = tree_digest(tmp_path)
        assert second != first
        (tmp_path / "a.yaml").rename(tmp_path / "c.yaml")
        assert tree_digest(tmp_path) not in (first, second)

    def test_hidden_and_ignored_files_do_not_count(self, tmp_path: Path) -> None:
        write(tmp_path, {".sourceignore": "*.bak\n", "a.yaml": "1"})
        first = tree_digest(tmp_path)
        write(tmp_path, {"a.yaml.bak": "old", ".git/HEAD": "ref", "sub/.hidden": "x"})
        assert tree_digest(tmp_path) == first

    def test_empty_directories_do_not_count(self, tmp_path: Path) -> None:
        write(tmp_path, {"a.yaml": "1"})
        first = tree_digest(tmp_path)
        (tmp_path / "empty" / "deeper").mkdir(parents=True)
        assert tree_digest(tmp_path) == first


_segment = st.text(alphabet="ab-_.0Z", min_size=1, max_size=4).filter(
    lambda s: not s.startswith(".")
)


@given(st.sets(st.lists(_segment, min_size=1, max_size=3).map("/".join), max_size=12))
def test_walk_finds_exactly_the_written_files_in_sorted_order(paths: set[str]) -> None:
    # Drop paths that are a prefix directory of another (a name cannot be file and dir).
    files = {p for p in paths if not any(q.startswith(p + "/") for q in paths)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(rel)
        found = list(walk(root))
        assert [f.relpath for f in found] == sorted(files)
        assert all(f.path.read_text() == f.relpath for f in found)
        assert all(os.sep not in f.relpath or os.sep == "/" for f in found)
