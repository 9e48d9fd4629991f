"""The file-tree target shared by processes and inventories: the sync lock, owners(),
temporary files of killed writers, read-only use, and options from URL and keywords."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gitops
from gitops.errors import ConflictError, InvalidURLError, TargetError, UnreachableError
from gitops.model import Inventory, Resource, ResourceKey
from gitops.targets.filetree import FileTreeOptions, FileTreeTarget
from gitops.targets.filetree import fs as filetree_fs
from gitops.targets.filetree.target import FileTreeTarget as TargetClass

A = ResourceKey("", "ConfigMap", "web", "a")
B = ResourceKey("", "ConfigMap", "web", "b")
C = ResourceKey("", "ConfigMap", "web", "c")
SOURCE_ROOT = str(Path(gitops.__file__).resolve().parents[1])


def configmap(key: ResourceKey) -> Resource:
    return Resource.from_manifest(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "data": {"k": "v"},
        }
    )


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a new interpreter that imports this checkout's gitops."""
    env = {**os.environ, "PYTHONPATH": SOURCE_ROOT}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


HOLD_LOCK = """
import sys, time
from gitops.targets.filetree import FileTreeTarget
with FileTreeTarget(sys.argv[1]).lock(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``tmp_path / 'tree'`` for inventory 'app-a'."""
    process = python(HOLD_LOCK, str(tmp_path / "tree"), "app-a", "60")
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdout.close()


# -- the sync lock -------------------------------------------------------------------------


def test_a_second_process_gets_a_conflict_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    target = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    with pytest.raises(ConflictError) as info, target.lock("app-b"):
        pass
    message = str(info.value)
    assert f"another sync of {tmp_path / 'tree'} is running (pid {holder.pid}" in message
    assert "inventory 'app-a'" in message
    assert info.value.url == f"dir:{tmp_path / 'tree'}"


def test_kill_9_of_the_holder_frees_the_lock(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    target = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with target.lock("app-b"):
        record = json.loads((tmp_path / "tree/.gitops/lock").read_text())
        assert (record["pid"], record["inventory"]) == (os.getpid(), "app-b")
    assert (tmp_path / "tree/.gitops/lock").read_text() == ""  # emptied on release


def test_a_waiting_sync_gets_the_lock_when_the_holder_ends(tmp_path: Path) -> None:
    process = python(HOLD_LOCK, str(tmp_path / "tree"), "app-a", "0.5")
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    target = FileTreeTarget(tmp_path / "tree", lock_timeout=30)
    with target.lock("app-b"):
        assert process.wait(5) == 0  # it had to end first
    process.stdout.close()


def test_reading_needs_no_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    target = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    assert target.live([A]) == {}
    assert target.read_inventory("app-b") is None
    assert target.owners([A], "app-b") == {}


def test_two_targets_in_one_process_exclude_each_other_too(tmp_path: Path) -> None:
    first = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    second = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    conflict = pytest.raises(ConflictError, match=f"pid {os.getpid()}, inventory 'a'")
    with first.lock("a"), conflict, second.lock("b"):
        pass
    with second.lock("b"):
        pass


def test_the_lock_is_released_when_the_sync_fails_and_its_errors_pass_through(
    tmp_path: Path,
) -> None:
    target = FileTreeTarget(tmp_path / "tree", lock_timeout=0)
    with pytest.raises(OSError) as info, target.lock("a"):
        raise OSError(28, "No space left on device")
    assert not isinstance(info.value, TargetError)  # not mistaken for a lock failure
    with target.lock("a"):
        pass


def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree/.gitops").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "tree/.gitops/lock").symlink_to(victim)
    with pytest.raises(TargetError, match=r"\.gitops/lock"), FileTreeTarget(
        tmp_path / "tree"
    ).lock("a"):
        pass
    assert victim.read_text() == "keep"


# -- owners --------------------------------------------------------------------------------


def test_owners_are_the_other_inventories_listing_the_keys(tmp_path: Path) -> None:
    target = FileTreeTarget(tmp_path / "tree")
    other = FileTreeTarget(tmp_path / "tree")  # as another process would see it
    target.write_inventory("a", Inventory({A: "v1", B: "v1"}))
    other.write_inventory("team/b", Inventory({B: "v1", C: "v1"}))
    other.write_inventory("z", Inventory({C: "v1"}))
    assert target.owners([A, B, C], "a") == {B: "team/b", C: "team/b"}
    assert target.owners([A, B, C], "z") == {A: "a", B: "a", C: "team/b"}
    assert target.owners([A], "a") == {}
    assert target.owners([], "a") == {}
    other.write_inventory("team/b", Inventory({}))  # b let go of its keys
    assert target.owners([A, B, C], "a") == {C: "z"}


def test_owners_parse_each_unchanged_inventory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = FileTreeTarget(tmp_path / "tree")
    target.write_inventory("a", Inventory({A: "v1"}))
    target.write_inventory("b", Inventory({B: "v1"}))
    parsed: list[str] = []
    parse = TargetClass._parse_inventory

    def counting(self: TargetClass, rel: str, data: bytes) -> Inventory:
        parsed.append(rel)
        return parse(self, rel, data)

    monkeypatch.setattr(TargetClass, "_parse_inventory", counting)
    for _ in range(3):
        assert target.owners([A, B], "c") == {A: "a", B: "b"}
    assert sorted(parsed) == [".gitops/inventory/a.json", ".gitops/inventory/b.json"]


def test_owners_ignore_other_files_and_refuse_a_corrupt_inventory(tmp_path: Path) -> None:
    target = FileTreeTarget(tmp_path / "tree")
    target.write_inventory("a", Inventory({A: "v1"}))
    folder = tmp_path / "tree/.gitops/inventory"
    (folder / "notes.txt").write_text("not an inventory")
    (folder / "%61.json").write_text("{}")  # not a name this target writes
    (folder / ".gitops-tmp-1-0000abcd-000000000000").write_text("{")
    assert target.owners([A], "b") == {A: "a"}
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(TargetError, match=r"inventory/broken\.json: corrupt inventory"):
        target.owners([A], "b")
    assert target.owners([A], "broken") == {A: "a"}  # its own file is not read


# -- temporary files of killed writers -----------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_write_sweeps_temp_files_of_dead_writers_only(tmp_path: Path) -> None:
    target = FileTreeTarget(tmp_path / "tree")
    target.apply(configmap(A))
    folder = tmp_path / "tree/web/ConfigMap"
    tag = filetree_fs._host_tag()
    other = "e" * 8 if tag == "f" * 8 else "f" * 8  # another machine, boot or pid namespace
    dead = folder / f".gitops-tmp-{dead_pid()}-{tag}-0123456789ab"
    alive = folder / f".gitops-tmp-{os.getppid()}-{tag}-0123456789ab"
    foreign_new = folder / f".gitops-tmp-{dead_pid()}-{other}-0123456789ab"
    foreign_old = folder / f".gitops-tmp-{dead_pid()}-{other}-ba9876543210"
    legacy_old = folder / f".gitops-tmp-{dead_pid()}-0123456789ab"  # before host tags
    unknown = folder / ".gitops-tmp-notes"
    for path in (dead, alive, foreign_new, foreign_old, legacy_old, unknown):
        path.write_text("partial")
    hour_ago = time.time() - 2 * filetree_fs.FOREIGN_TEMP_AGE
    for path in (foreign_old, legacy_old):
        os.utime(path, (hour_ago, hour_ago))
    outside = tmp_path / "outside"
    outside.write_text("keep")
    link = folder / f".gitops-tmp-{dead_pid()}-{tag}-ba9876543210"
    link.symlink_to(outside)

    FileTreeTarget(tmp_path / "tree").apply(configmap(B))

    left = {p.name for p in folder.iterdir()}
    assert left == {"a.yaml", "b.yaml", alive.name, foreign_new.name, unknown.name, link.name}
    assert outside.read_text() == "keep"


SLOW_WRITER = """
import os, sys, time
from gitops.model import Resource
from gitops.targets.filetree import FileTreeTarget
real_replace = os.replace
def replace(src, dst, **kw):  # the resource's write hangs until killed; the ledger's does not
    return time.sleep(60) if dst.endswith(".yaml") else real_replace(src, dst, **kw)
os.replace = replace
FileTreeTarget(sys.argv[1]).apply(Resource.from_manifest(
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "web"}}))
"""


def test_kill_9_during_a_write_leaves_a_temp_file_the_next_write_removes(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "tree/web/ConfigMap"
    process = python(SLOW_WRITER, str(tmp_path / "tree"))
    deadline = time.monotonic() + 30
    while not (folder.is_dir() and any(folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert process.stdout is not None
    process.stdout.close()
    (temp,) = folder.iterdir()
    assert temp.name.startswith(f".gitops-tmp-{process.pid}-")

    FileTreeTarget(tmp_path / "tree").apply(configmap(A))
    assert [p.name for p in folder.iterdir()] == ["a.yaml"]


def test_a_delete_sweeps_so_the_folder_it_created_can_go(tmp_path: Path) -> None:
    target = FileTreeTarget(tmp_path / "tree")
    target.apply(configmap(A))
    folder = tmp_path / "tree/web/ConfigMap"
    (folder / f".gitops-tmp-{dead_pid()}-{filetree_fs._host_tag()}-0123456789ab").write_text("")
    assert FileTreeTarget(tmp_path / "tree").delete(A)
    assert not (tmp_path / "tree/web").exists()


# -- read-only use -------------------------------------------------------------------------


def test_reading_a_missing_root_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "out"
    for target in (FileTreeTarget(root), gitops.open_target(f"dir:{root}")):
        assert isinstance(target, FileTreeTarget)
        assert target.live([A]) == {}
        assert target.read_inventory("default") is None
        assert target.owners([A], "default") == {}
        assert target.delete(A) is False
        assert target.delete(A, dry_run=True) is False
        assert target.apply(configmap(A), dry_run=True).key == A
    assert list(tmp_path.iterdir()) == []


def test_writes_and_the_lock_create_a_missing_root(tmp_path: Path) -> None:
    FileTreeTarget(tmp_path / "one").write_inventory("a", Inventory({}))
    assert (tmp_path / "one/.gitops/inventory/a.json").is_file()
    with FileTreeTarget(tmp_path / "two/deeper").lock("a"):
        assert (tmp_path / "two/deeper/.gitops/lock").is_file()
    FileTreeTarget(tmp_path / "three").apply(configmap(A))
    assert (tmp_path / "three/web/ConfigMap/a.yaml").is_file()


def test_a_root_that_cannot_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for url in (f"dir:{tmp_path / 'file'}", f"dir:{tmp_path / 'file/below'}"):
        with pytest.raises(UnreachableError, match="is not a folder"):
            gitops.open_target(url)
    with pytest.raises(UnreachableError, match="no such folder"):
        FileTreeTarget(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_a_dry_run_on_a_missing_root_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    target = FileTreeTarget(tmp_path / "out")
    (tmp_path / "out").symlink_to(tmp_path / "file")  # appears after opening
    with pytest.raises(UnreachableError):
        target.apply(configmap(A), dry_run=True)


# -- options -------------------------------------------------------------------------------


def test_url_and_keyword_options_go_through_one_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from_url = gitops.open_target("dir:out?fsync=true&lock_timeout=0.5&adopt=1")
    from_keywords = gitops.open_target("dir:out", fsync=True, lock_timeout=0.5, adopt=True)
    direct = FileTreeTarget("out", fsync=True, lock_timeout=0.5, adopt=True)
    model = FileTreeTarget("out", FileTreeOptions(fsync=True, lock_timeout=0.5, adopt=True))
    for target in (from_url, from_keywords, direct, model):
        assert isinstance(target, FileTreeTarget)
        assert target.options == FileTreeOptions(fsync=True, lock_timeout=0.5, adopt=True)
        assert target.adopt is True and target.root == tmp_path / "out"
    assert isinstance(opened := gitops.open_target("dir:out?fsync=true", fsync=False), FileTreeTarget)
    assert opened.options.fsync is False  # keywords win
    with pytest.raises(TypeError):
        FileTreeTarget("out", FileTreeOptions(), fsync=True)


@pytest.mark.parametrize(
    ("url", "keywords", "problem"),
    [
        ("dir:out?fsnyc=true", {}, "unknown option 'fsnyc'"),
        ("dir:out?fsync=maybe", {}, "option fsync"),
        ("dir:out?lock_timeout=-1", {}, "option lock_timeout"),
        ("dir:out?fsync=1&fsync=0", {}, "given twice"),
        ("dir:out?fsync", {}, "malformed query"),
        ("dir:out", {"fsnyc": True}, "option fsnyc"),
        ("dir:out", {"create": "sometimes"}, "option create"),
    ],
)
def test_bad_options_are_an_invalid_url_error_naming_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, keywords: dict[str, object],
    problem: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidURLError, match=problem) as info:
        gitops.open_target(url, **keywords)
    assert info.value.url in (url, f"dir:{tmp_path / 'out'}")
    assert list(tmp_path.iterdir()) == []
