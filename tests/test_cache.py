"""The artifact cache: atomic, read-only, locked, bounded."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gitops.cache import ArtifactStore, cache_root


def fill_with(content: str):  # type: ignore[no-untyped-def]
    def fill(tmp: Path) -> None:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.yaml").write_text(content)
    return fill


def test_materialize_once_read_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    calls = []

    def fill(tmp: Path) -> None:
        calls.append(tmp)
        fill_with("x")(tmp)

    first = store.materialize("k1", fill)
    second = store.materialize("k1", fill)
    assert first == second == store.path("k1") and len(calls) == 1
    assert (first / "sub" / "a.yaml").read_text() == "x"
    assert not os.stat(first / "sub" / "a.yaml").st_mode & 0o222
    assert list((tmp_path / "tmp").iterdir()) == []


def test_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    def fill(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError):
        store.materialize("k", fill)
    assert store.get("k") is None and list((tmp_path / "tmp").iterdir()) == []


def test_concurrent_materialize_fills_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    calls = []

    def fill(tmp: Path) -> None:
        calls.append(1)
        time.sleep(0.05)
        fill_with("y")(tmp)

    threads = [threading.Thread(target=store.materialize, args=("k", fill)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_prune_by_age_and_size(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for key in ("old", "mid", "new"):
        store.materialize(key, fill_with(key * 100))
    os.utime(store.path("old"), (0, time.time() - 1000))
    os.utime(store.path("mid"), (0, time.time() - 10))
    assert store.prune(max_age=500) == ["old"]
    assert store.prune(max_bytes=350, keep=frozenset({"mid"})) == ["new"]
    assert store.get("mid") is not None


def test_invalid_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ArtifactStore(tmp_path).path("../escape")


def test_cache_root_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("GITOPS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "gitops"


def test_a_fill_that_leaves_the_tree_read_only_skips_the_read_only_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path)

    def fill(tmp: Path) -> None:
        fill_with("z")(tmp)
        (tmp / "sub" / "a.yaml").chmod(0o444)
        (tmp / "sub").chmod(0o555)
        tmp.chmod(0o555)

    def no_second_pass(root: Path) -> None:
        raise AssertionError("the tree was walked again")

    monkeypatch.setattr("gitops.cache._make_read_only", no_second_pass)
    path = store.materialize("k", fill, fill_makes_read_only=True)
    assert (path / "sub" / "a.yaml").read_text() == "z"
    assert not os.stat(path / "sub" / "a.yaml").st_mode & 0o222
    assert not os.stat(path).st_mode & 0o222
    with pytest.raises(AssertionError, match="walked again"):
        store.materialize("other", fill_with("w"))
    assert store.get("other") is None and list((tmp_path / "tmp").iterdir()) == []


def test_read_only_trees_are_moved_into_place_without_root_powers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux refuses to move a directory to another parent unless it is writable (its
    ".." changes); root is exempt, so the check is emulated for tests run as root."""
    real_rename = os.rename

    def rename_as_a_user(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        source, target = Path(src), Path(dst)
        if (source.is_dir() and source.parent != target.parent
                and not source.stat().st_mode & 0o200):
            raise PermissionError(13, "Permission denied", os.fspath(src))
        real_rename(src, dst)

    monkeypatch.setattr("gitops.cache.os.rename", rename_as_a_user)
    store = ArtifactStore(tmp_path)
    plain = store.materialize("plain", fill_with("p"))

    def read_only_fill(tmp: Path) -> None:
        fill_with("r")(tmp)
        (tmp / "sub" / "a.yaml").chmod(0o444)
        (tmp / "sub").chmod(0o555)
        tmp.chmod(0o555)

    ready = store.materialize("ready", read_only_fill, fill_makes_read_only=True)
    for path in (plain, ready):
        assert os.stat(path).st_mode & 0o777 == 0o555
        assert os.stat(path / "sub").st_mode & 0o777 == 0o555
