"""The artifact cache: atomic, read-only, locked, bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gitops.cache import ArtifactStore, cache_root, sweep_temp, temp_name


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


# -- temporaries of dead processes -------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_names_name_this_process_and_host() -> None:
    name = temp_name("k.")
    assert name.startswith(f"k..gitops-tmp-{os.getpid()}-") and temp_name("k.") != name


def test_sweep_removes_only_what_dead_processes_of_this_host_left(tmp_path: Path) -> None:
    mine = tmp_path / temp_name("mine")
    mine.mkdir()
    dead = temp_name("dead").replace(f"-{os.getpid()}-", f"-{dead_pid()}-")
    (tmp_path / dead).mkdir()
    (tmp_path / dead / "half.yaml").write_text("x")
    (tmp_path / dead / "half.yaml").chmod(0o444)
    (tmp_path / dead).chmod(0o555)  # read-only, as a half-made artifact is
    dead_file = temp_name("file").replace(f"-{os.getpid()}-", f"-{dead_pid()}-")
    (tmp_path / dead_file).write_text("x")
    other_host = f"x.gitops-tmp-{dead_pid()}-00000000-abcdef"
    (tmp_path / other_host).write_text("x")
    (tmp_path / "artifact").mkdir()
    assert sorted(sweep_temp(tmp_path)) == sorted([dead, dead_file])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, other_host, "artifact"])


KILLED_FILL = """
import sys, time
from pathlib import Path
from gitops.cache import ArtifactStore

def fill(tmp: Path) -> None:
    (tmp / "half.yaml").write_text("x")
    print("filling", flush=True)
    time.sleep(60)

ArtifactStore(sys.argv[1]).materialize("killed", fill)
"""


def test_a_write_after_kill_9_sweeps_the_half_made_artifact(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_FILL, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout is not None and child.stdout.readline() == "filling\n"
        left = list((tmp_path / "tmp").iterdir())
        assert len(left) == 1 and str(child.pid) in left[0].name
        store = ArtifactStore(tmp_path)
        store.materialize("other", fill_with("y"))  # the child is alive: its work stays
        assert (tmp_path / "tmp" / left[0].name).exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (tmp_path / "tmp" / left[0].name).exists(), "kill -9 leaves it behind"
    ArtifactStore(tmp_path).materialize("next", fill_with("z"))
    assert list((tmp_path / "tmp").iterdir()) == []
    assert ArtifactStore(tmp_path).get("killed") is None


def test_remove_is_one_rename_and_reports_who_won(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.materialize("k", fill_with("x"))
    assert store.size("k") == 1
    assert store.remove("k") is True and store.get("k") is None
    assert store.remove("k") is False
    assert list((tmp_path / "tmp").iterdir()) == []
