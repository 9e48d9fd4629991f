"""The file-tree target's live reads through the stat cache: untouched files are not read
again and keep their identity, while every hand edit is still seen."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import TargetError
from gitops.model import Resource, ResourceKey
from gitops.targets.filetree import FileTreeTarget, statcache
from gitops.targets.filetree.target import FileTreeTarget as TargetClass

KEYS = [ResourceKey("", "ConfigMap", "web", f"cm-{i}") for i in range(5)]
CM = KEYS[0]


def configmap(key: ResourceKey, value: str = "aaaa") -> Resource:
    return Resource.from_manifest(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "data": {"value": value},
        }
    )


class Spy:
    """Counts file reads and parses of one target class."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        self.parses = 0
        read, parse = TargetClass._read_file, TargetClass._parse_resource

        def counting_read(target: TargetClass, *args: Any) -> Any:
            self.reads += 1
            return read(target, *args)

        def counting_parse(target: TargetClass, *args: Any) -> Any:
            self.parses += 1
            return parse(target, *args)

        monkeypatch.setattr(TargetClass, "_read_file", counting_read)
        monkeypatch.setattr(TargetClass, "_parse_resource", counting_parse)

    def reset(self) -> None:
        self.reads = self.parses = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    return Spy(monkeypatch)


@pytest.fixture
def target(tmp_path: Path) -> FileTreeTarget:
    return FileTreeTarget(tmp_path / "tree")


def settle() -> None:
    """Wait until files written so far are out of the racy window."""
    time.sleep(statcache.FINE_WINDOW_NS / 1e9 + 0.05)


def rewrite_in_place(path: Path, data: bytes, *, keep_mtime: bool = True) -> None:
    """Overwrite ``path`` in place (same inode), restoring its mtime, as ``cp -p`` would."""
    before = path.stat()
    assert len(data) == before.st_size
    with path.open("r+b") as file:
        file.write(data)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert not keep_mtime or after.st_mtime_ns == before.st_mtime_ns


def test_untouched_files_are_not_read_again_and_keep_their_identity(
    target: FileTreeTarget, spy: Spy
) -> None:
    for key in KEYS:
        target.apply(configmap(key))
    settle()
    first = target.live(KEYS)
    assert spy.reads == spy.parses == len(KEYS)
    spy.reset()
    second = target.live(KEYS)
    assert spy.reads == spy.parses == 0
    assert all(second[key] is first[key] for key in KEYS)
    assert second[CM].manifest["data"] == {"value": "aaaa"}


def test_a_racy_entry_is_read_again_and_compared_by_digest(
    target: FileTreeTarget, spy: Spy
) -> None:
    target.apply(configmap(CM))
    first = target.live([CM])  # just written: its stat could still change within the tick
    spy.reset()
    second = target.live([CM])
    assert spy.reads == 1 and spy.parses == 0  # read and hashed, not parsed
    assert second[CM] is first[CM]
    settle()
    target.live([CM])  # read once more, now old enough to be trusted
    spy.reset()
    assert target.live([CM])[CM] is first[CM] and spy.reads == 0


def test_a_same_size_rewrite_that_keeps_the_mtime_is_seen(target: FileTreeTarget) -> None:
    target.apply(configmap(CM, "aaaa"))
    settle()
    assert target.live([CM])[CM].manifest["data"]["value"] == "aaaa"
    path = target.root / "web/ConfigMap/cm-0.yaml"
    rewrite_in_place(path, path.read_bytes().replace(b"aaaa", b"bbbb"))
    # inode, size and mtime_ns are those the cache saw; the ctime moved (nobody can set it)
    assert target.live([CM])[CM].manifest["data"]["value"] == "bbbb"


def test_the_racy_rule_alone_catches_a_rewrite_within_the_same_tick(
    target: FileTreeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a ctime that does not move (as if the rewrite hit the same clock tick), only
    the racy rule can tell: the first read was within the granularity of the write."""
    monkeypatch.setattr(
        statcache, "signature", lambda info: (info.st_ino, info.st_size, info.st_mtime_ns, 0)
    )
    target.apply(configmap(CM, "aaaa"))
    assert target.live([CM])[CM].manifest["data"]["value"] == "aaaa"
    path = target.root / "web/ConfigMap/cm-0.yaml"
    rewrite_in_place(path, path.read_bytes().replace(b"aaaa", b"bbbb"))
    assert target.live([CM])[CM].manifest["data"]["value"] == "bbbb"


def test_a_file_replaced_by_an_editor_is_seen(target: FileTreeTarget) -> None:
    target.apply(configmap(CM, "aaaa"))
    settle()
    target.live([CM])
    path = target.root / "web/ConfigMap/cm-0.yaml"
    before = path.stat()
    replacement = path.with_name("edit.tmp")
    replacement.write_bytes(path.read_bytes().replace(b"aaaa", b"cccc"))
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert target.live([CM])[CM].manifest["data"]["value"] == "cccc"


def test_touching_a_file_reads_it_but_keeps_the_parsed_object(
    target: FileTreeTarget, spy: Spy
) -> None:
    target.apply(configmap(CM))
    settle()
    first = target.live([CM])[CM]
    os.utime(target.root / "web/ConfigMap/cm-0.yaml")
    spy.reset()
    assert target.live([CM])[CM] is first
    assert (spy.reads, spy.parses) == (1, 0)


def test_deleted_recreated_and_relinked_files(target: FileTreeTarget, tmp_path: Path) -> None:
    target.apply(configmap(CM, "aaaa"))
    settle()
    target.live([CM])
    path = target.root / "web/ConfigMap/cm-0.yaml"
    path.unlink()
    assert target.live([CM]) == {}
    target.apply(configmap(CM, "dddd"))
    assert target.live([CM])[CM].manifest["data"]["value"] == "dddd"
    settle()
    target.live([CM])
    outside = tmp_path / "outside.yaml"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)  # never served from the cache, never followed
    with pytest.raises(TargetError, match="symbolic link"):
        target.live([CM])


def test_the_cache_keeps_only_the_files_of_the_last_two_calls(target: FileTreeTarget) -> None:
    for key in KEYS:
        target.apply(configmap(key))
    settle()
    first = target.live(KEYS)
    target.live(KEYS[:1])
    assert target.live(KEYS[1:2])[KEYS[1]] is first[KEYS[1]]  # seen two calls ago
    target.live(KEYS[:1])
    target.live(KEYS[:1])
    assert len(target._live) == 1
    assert target.live(KEYS[2:3])[KEYS[2]] is not first[KEYS[2]]  # forgotten: read anew


def test_a_parse_error_caches_nothing_and_names_the_file_without_quoting_it(
    target: FileTreeTarget,
) -> None:
    target.apply(configmap(CM))
    path = target.root / "web/ConfigMap/cm-0.yaml"
    path.write_text("apiVersion: v1\nkind: Secret\nstringData:\n  password: !Hunter2secret\n")
    for _ in range(2):
        with pytest.raises(TargetError) as info:
            target.live([CM])
        assert str(path) in str(info.value) and "line 4" in str(info.value)
        assert "Hunter2" not in str(info.value)
    target.apply(configmap(CM, "eeee"))
    assert target.live([CM])[CM].manifest["data"]["value"] == "eeee"


def test_is_racy_uses_the_coarse_window_for_whole_second_timestamps() -> None:
    now = 1_000_000_000_000_000_000

    def info(mtime: int, ctime: int) -> os.stat_result:
        times = (0, mtime // 10**9, ctime // 10**9, 0.0, mtime / 1e9, ctime / 1e9, 0, mtime, ctime)
        return os.stat_result((0o100644, 1, 1, 1, 0, 0, 4, *times))

    def check(info: os.stat_result) -> bool:
        return statcache.is_racy(info, now)

    assert check(info(now - 50_000_000, now - 50_000_001))  # fine stamps, 50 ms old
    assert not check(info(now - 500_000_000, now - 500_000_001))  # 0.5 s old
    assert check(info(now - 1_000_000_000, now - 1_000_000_000))  # whole seconds, 1 s old
    assert not check(info(now - 3_000_000_000, now - 3_000_000_000))
    assert check(info(now + 5_000_000_000, now - 9_000_000_000))  # an mtime in the future
