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
