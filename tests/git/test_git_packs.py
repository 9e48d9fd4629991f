"""Taking fetched packs into a mirror (gitops.sources.git.packs), against git and dulwich.

Packs are made by the real ``git pack-objects`` (offset deltas, reference deltas, thin
packs); what :func:`ingest_pack` installs must be what dulwich's own indexer installs,
byte for byte, and what ``git verify-pack`` accepts.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from dulwich.object_format import SHA1
from dulwich.objects import ObjectID
from dulwich.pack import PackStreamReader, write_pack_index_v2
from dulwich.repo import Repo

from gitops.sources.git import packs
from gitops.sources.git.packs import PackError, index_v2, ingest_pack
from gitops.testing.gitserver import WorkRepo


def _content(i: int, version: int) -> str:
    """Files similar enough to each other and across versions for git to delta them."""
    lines = [f"line {n}: {'x' * (n % 17)} value {n * 7919 % 1009}\n" for n in range(120)]
    lines[i % 120] = f"line {i}: version {version} of file {i}\n"
    return "".join(lines)


@pytest.fixture
def work(tmp_path: Path, git_home: Path) -> WorkRepo:
    repo = WorkRepo(tmp_path / "work", home=git_home)
    for version in range(3):
        repo.write({f"d{i % 3}/f{i:02d}.txt": _content(i, version) for i in range(30)})
        repo.write({"empty": "", "same-a": "twin\n", "same-b": "twin\n"})
        repo.commit(f"version {version}")
    repo.git("tag", "-a", "-m", "a tag", "v1")
    return repo


def pack_of(repo: WorkRepo, *revs: str, options: tuple[str, ...] = ()) -> bytes:
    done = subprocess.run(["git", "-C", os.fspath(repo.path), "pack-objects", "--stdout",
                           "--revs", *options], input="".join(f"{r}\n" for r in revs).encode(),
                          capture_output=True, env=repo.env, check=True)
    return done.stdout


def kinds_in(data: bytes) -> set[int]:
    """The pack types of a pack's objects (6: offset delta, 7: reference delta)."""
    return {o.pack_type_num for o in PackStreamReader(SHA1.hash_func,
                                                      io.BytesIO(data).read).read_objects()}


def bare(path: Path) -> Repo:
    return Repo.init_bare(os.fspath(path), mkdir=True)


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def objects_of(repo: WorkRepo) -> dict[str, tuple[int, bytes]]:
    listed = repo.git("rev-list", "--objects", "--all").split()
    source = Repo(os.fspath(repo.path))
    try:
        return {sha: source.object_store.get_raw(ObjectID(sha.encode()))
                for sha in listed if len(sha) == 40}
    finally:
        source.close()


@pytest.mark.parametrize(("options", "delta"), [(("--delta-base-offset",), 6), ((), 7)],
                         ids=["offset-deltas", "reference-deltas"])
def test_a_pack_is_installed_as_dulwich_installs_it(work: WorkRepo, tmp_path: Path,
                                                    options: tuple[str, ...], delta: int) -> None:
    data = pack_of(work, options=("--all", *options))
    assert kinds_in(data) == {1, 2, 3, 4, delta}
    ours, theirs = bare(tmp_path / "ours.git"), bare(tmp_path / "theirs.git")
    blobs: dict[ObjectID, bytes] = {}
    ingest_pack(ours.object_store, io.BytesIO(data).read, blobs)
    theirs.object_store.add_thin_pack(io.BytesIO(data).read, None)
    pack_dir = Path(ours.object_store.pack_dir)
    assert files_in(pack_dir) == files_in(Path(theirs.object_store.pack_dir))
    assert [p for p in Path(ours.object_store.path).iterdir() if p.name.startswith("tmp")] == []
    expected = objects_of(work)
    for sha, raw in expected.items():
        assert ours.object_store.get_raw(ObjectID(sha.encode())) == raw
    assert {sha.decode(): (3, data) for sha, data in blobs.items()} == {
        sha: raw for sha, raw in expected.items() if raw[0] == 3}
    (idx,) = pack_dir.glob("*.idx")
    git_ok = subprocess.run(["git", "verify-pack", os.fspath(idx)], capture_output=True,
                            env=work.env, check=False)
    assert git_ok.returncode == 0, git_ok.stderr


def test_a_thin_pack_is_completed_with_its_bases(work: WorkRepo, tmp_path: Path) -> None:
    old = pack_of(work, "HEAD~1", options=("--delta-base-offset",))
    thin = pack_of(work, "HEAD", "^HEAD~1", options=("--delta-base-offset", "--thin"))
    assert 7 in kinds_in(thin), "deltas against objects outside the pack"
    mirror = bare(tmp_path / "mirror.git")
    ingest_pack(mirror.object_store, io.BytesIO(old).read, {})
    fresh: dict[ObjectID, bytes] = {}
    ingest_pack(mirror.object_store, io.BytesIO(thin).read, fresh)
    for sha, raw in objects_of(work).items():
        if sha != work.git("rev-parse", "v1").strip():
            assert mirror.object_store.get_raw(ObjectID(sha.encode())) == raw
    assert fresh and all(mirror.object_store.get_raw(sha) == (3, data)
                         for sha, data in fresh.items())
    for idx in Path(mirror.object_store.pack_dir).glob("*.idx"):  # each pack stands alone
        git_ok = subprocess.run(["git", "verify-pack", os.fspath(idx)], capture_output=True,
                                env=work.env, check=False)
        assert git_ok.returncode == 0, git_ok.stderr


def _retrailed(data: bytes) -> bytes:
    return data[:-20] + hashlib.sha1(data[:-20]).digest()


def _object(kind: int, content: bytes, prefix: bytes = b"") -> bytes:
    size = len(content)
    first = (kind << 4) | (size & 15)
    size >>= 4
    header = bytearray()
    while size:
        header.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    header.append(first)
    return bytes(header) + prefix + zlib.compress(content)


def _pack(*objects: bytes, count: int | None = None) -> bytes:
    body = b"PACK" + struct.pack(">LL", 2, len(objects) if count is None else count)
    return _retrailed(body + b"".join(objects) + b"\0" * 20)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "no pack header"),
    (b"JUNK" + b"\0" * 40, "no pack header"),
    (_pack(_object(3, b"hello\n"))[:-1] + b"\0", "checksum does not match"),
    (_pack(_object(3, b"hello\n"), count=2), "truncated"),
    (_pack(_object(3, b"hello\n"), _object(3, b"bye\n"), count=1), "data after the last object"),
    (_pack(_object(5, b"x")), "unknown type 5"),
    (_pack(_object(3, b"hello\n")[:1] + b"\x78\x9c" + b"\xff" * 8), "does not inflate"),
    (_pack(bytes([0x30 | 2]) + zlib.compress(b"hello\n")), "larger than announced"),
    (_pack(bytes([0x30 | 9]) + zlib.compress(b"hello\n")), "smaller than announced"),
    (_pack(_object(7, b"\x05\x05\x90\x05", prefix=b"\x11" * 20)), "missing bases: 1111"),
    (_pack(_object(6, b"\x05\x05\x90\x05", prefix=b"\x05")), "invalid base offset"),
    (_pack(_object(3, b"hello"), _object(6, b"\x09\x05\x90\x05", prefix=b"\x0e")),
     "does not apply"),
    (_pack(_object(2, b"100644 name-without-a-sha")), "tree"),
    (_pack(bytes([0x60 | 5])), "delta at 12 is truncated"),
    (_pack(bytes([0x70 | 5]) + b"\x11" * 19), "delta at 12 is truncated"),
], ids=["empty", "not-a-pack", "checksum", "truncated", "trailing", "type", "zlib",
        "too-large", "too-small", "missing-base", "bad-offset", "bad-delta", "bad-tree",
        "cut-offset-delta", "cut-reference-delta"])
def test_malformed_packs_are_refused_and_leave_nothing(tmp_path: Path, data: bytes,
                                                       message: str) -> None:
    mirror = bare(tmp_path / "mirror.git")
    blobs: dict[ObjectID, bytes] = {}
    with pytest.raises(PackError, match=message):
        ingest_pack(mirror.object_store, io.BytesIO(data).read, blobs)
    assert blobs == {} and list(Path(mirror.object_store.pack_dir).iterdir()) == []
    assert [p for p in Path(mirror.object_store.path).iterdir() if p.name.startswith("tmp")] == []


@pytest.mark.parametrize("limit", ["MAX_PACK_BYTES", "MAX_INFLATED_BYTES"])
def test_large_packs_are_left_to_dulwich(work: WorkRepo, tmp_path: Path, limit: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packs, limit, 1000)
    mirror = bare(tmp_path / "mirror.git")
    blobs: dict[ObjectID, bytes] = {}
    ingest_pack(mirror.object_store, io.BytesIO(pack_of(work, options=("--all",))).read, blobs)
    assert blobs == {}, "dulwich's indexer keeps nothing in memory"
    for sha, raw in objects_of(work).items():
        assert mirror.object_store.get_raw(ObjectID(sha.encode())) == raw


def test_deltas_inflating_beyond_the_bound_are_left_to_dulwich(
    work: WorkRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pack_of(work, options=("--all", "--delta-base-offset"))
    announced = sum(o.decomp_len or 0 for o in PackStreamReader(
        SHA1.hash_func, io.BytesIO(data).read).read_objects())
    expected = objects_of(work)
    resolved = sum(len(raw) for _, raw in expected.values())
    assert announced < resolved, "deltas are smaller than what they make"
    monkeypatch.setattr(packs, "MAX_INFLATED_BYTES", (announced + resolved) // 2)
    mirror = bare(tmp_path / "mirror.git")
    blobs: dict[ObjectID, bytes] = {}
    ingest_pack(mirror.object_store, io.BytesIO(data).read, blobs)
    assert blobs == {}
    for sha, raw in expected.items():
        assert mirror.object_store.get_raw(ObjectID(sha.encode())) == raw


def test_index_v2_is_dulwichs_byte_for_byte() -> None:
    entries = sorted((bytes([i * 37 % 256]) + bytes(19 - i % 3) + bytes([i % 3] * (i % 3)),
                      (i * 1_000_003) if i % 5 else 2**31 + i * 7, i * 2654435761 % 2**32)
                     for i in range(300))
    expected = io.BytesIO()
    write_pack_index_v2(expected, entries, b"\x42" * 20)
    assert index_v2(entries, b"\x42" * 20) == expected.getvalue()
    empty = io.BytesIO()
    write_pack_index_v2(empty, [], b"\x42" * 20)
    assert index_v2([], b"\x42" * 20) == empty.getvalue()
