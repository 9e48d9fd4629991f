"""Take a fetched pack into a mirror in one pass, keeping the blobs a checkout will write.

dulwich reads a fetched pack four times in Python (copying it, indexing it, inflating
every object again to validate it, and once more when a checkout reads the blobs);
for a first fetch of a few thousand small files that cost more than the transfer.
:func:`ingest_pack` reads the pack once from memory: every object is inflated once,
each delta applied once (dulwich's C ``apply_delta``), every object hashed, checked
as dulwich checks it (pack checksum, object boundaries and sizes, delta bases; trees,
commits and tags parsed), and the pack and its index are installed as dulwich would
(``pack-<sha1 of the sorted names>``; a thin pack is completed with its external bases
first). The blobs come back by id, so the checkout writes them without reading the
pack again.

Packs too large to hold in memory (:data:`MAX_PACK_BYTES` on the wire,
:data:`MAX_INFLATED_BYTES` inflated) go through dulwich's own streaming indexer
instead. A malformed pack raises :class:`PackError` (a ``ValueError``) and leaves
nothing in the repository.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from dulwich.errors import ApplyDeltaError, ObjectFormatException
from dulwich.file import GitFile
from dulwich.object_store import PACK_MODE, DiskObjectStore
from dulwich.objects import ObjectID, RawObjectID, ShaFile
from dulwich.pack import (
    DEFAULT_PACK_INDEX_VERSION,
    apply_delta,
    extend_pack,
    iter_sha1,
    write_pack_index,
)

from gitops.cache import sweep_temp, temp_name

__all__ = ["MAX_INFLATED_BYTES", "MAX_PACK_BYTES", "PackError", "index_v2", "ingest_pack"]

#: Packs larger than this on the wire are indexed by dulwich, streaming from a file.
MAX_PACK_BYTES = 128 << 20
#: ... and so are packs whose objects inflate to more than this.
MAX_INFLATED_BYTES = 256 << 20

_BLOB = 3
_OFS_DELTA, _REF_DELTA = 6, 7
_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_FIRST_FEED = 1 << 16  # compressed bytes handed to zlib at first: most objects are smaller
_READ = 1 << 20
_SHA_LEN = 20


class PackError(ValueError):
    """The pack is malformed: truncated, corrupt, or with deltas that do not resolve."""


class _TooLarge(Exception):
    """This pack is better left to dulwich's streaming indexer."""


def ingest_pack(
    store: DiskObjectStore,
    read: Callable[[int], bytes],
    blobs: dict[ObjectID, bytes],
    *,
    progress: Callable[[bytes], Any] | None = None,
) -> None:
    """Read a whole pack from ``read`` and install it (and its index) in ``store``.

    Each blob of the pack is added to ``blobs`` (hex id -> content). ``read(n)`` returns
    at most ``n`` bytes and ``b""`` at the end (a file's read, as dulwich's client
    hands it). A pack whose deltas lean on objects outside it (a thin pack) is completed
    with those objects from ``store``. Raises PackError.
    """
    chunks: list[bytes] = []
    size = 0
    while chunk := read(_READ):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PACK_BYTES:
            _delegate(store, chunks, read, progress)
            return
    data = b"".join(chunks)
    del chunks
    try:
        entries, ext_refs, found = _index(data, store)
    except _TooLarge:
        _delegate(store, [data], read, progress)
        return
    if entries or ext_refs:
        _install(store, data, entries, ext_refs)
    blobs.update(found)


# -- reading ---------------------------------------------------------------------------


def _index(
    data: bytes, store: DiskObjectStore
) -> tuple[list[tuple[bytes, int, int]], set[RawObjectID], dict[ObjectID, bytes]]:
    """Every object's (binary id, offset, CRC-32), the external delta bases, the blobs."""
    if len(data) < 12 + _SHA_LEN or data[:4] != b"PACK":
        raise PackError("malformed pack: no pack header")
    version = int.from_bytes(data[4:8], "big")
    if version not in (2, 3):
        raise PackError(f"malformed pack: unsupported version {version}")
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - _SHA_LEN
    view = memoryview(data)
    if hashlib.sha1(view[:end]).digest() != data[end:]:
        raise PackError("malformed pack: its checksum does not match its content")
    resolver = _Resolver(store)
    pos = 12
    inflated = 0
    for _ in range(count):
        if pos >= end:
            raise PackError("malformed pack: truncated (fewer objects than announced)")
        start = pos
        byte = data[pos]
        kind = (byte >> 4) & 7
        length = byte & 15
        shift = 4
        pos += 1
        while byte & 0x80:
            if pos >= end:
                raise PackError("malformed pack: truncated object header")
            byte = data[pos]
            length |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        base: int | bytes | None = None
        if kind in (_OFS_DELTA, _REF_DELTA) and pos + (1 if kind == _OFS_DELTA else _SHA_LEN) > end:
            raise PackError(f"malformed pack: delta at {start} is truncated")
        if kind == _OFS_DELTA:
            byte = data[pos]
            back = byte & 0x7F
            pos += 1
            while byte & 0x80:
                if pos >= end:
                    raise PackError("malformed pack: truncated delta offset")
                byte = data[pos]
                back = ((back + 1) << 7) | (byte & 0x7F)
                pos += 1
            base = start - back
            if back <= 0 or base < 12:
                raise PackError(f"malformed pack: delta at {start} has an invalid base offset")
        elif kind == _REF_DELTA:
            base = data[pos:pos + _SHA_LEN]
            pos += _SHA_LEN
        elif kind not in _NAMES:
            raise PackError(f"malformed pack: object at {start} has unknown type {kind}")
        inflated += length
        if inflated > MAX_INFLATED_BYTES:
            raise _TooLarge
        content, pos = _inflate(view, pos, end, length, start)
        crc = zlib.crc32(view[start:pos])
        if base is None:
            resolver.add(start, kind, content, crc)
        else:
            resolver.add_delta(start, base, content, crc)
    if pos != end:
        raise PackError("malformed pack: data after the last object")
    resolver.finish()
    return resolver.entries, resolver.ext_refs, resolver.blobs


def _inflate(view: memoryview, pos: int, end: int, size: int, start: int) -> tuple[bytes, int]:
    """The ``size`` bytes zlib-compressed at ``pos``, and where the compressed data ends."""
    inflater = zlib.decompressobj()
    feed: bytes | memoryview = view[pos:min(end, pos + min(size + 64, _FIRST_FEED))]
    pos += len(feed)
    parts = []
    got = 0
    try:
        while True:
            out = inflater.decompress(feed, size + 1 - got)
            got += len(out)
            parts.append(out)
            if got > size:
                raise PackError(f"malformed pack: object at {start} is larger than announced")
            if inflater.eof:
                break
            if inflater.unconsumed_tail:
                feed = inflater.unconsumed_tail
                continue
            if pos >= end:
                raise PackError(f"malformed pack: object at {start} is truncated")
            feed = view[pos:min(end, pos + _READ)]
            pos += len(feed)
    except zlib.error as exc:
        raise PackError(f"malformed pack: object at {start} does not inflate: {exc}") from exc
    if got != size:
        raise PackError(f"malformed pack: object at {start} is smaller than announced")
    return (parts[0] if len(parts) == 1 else b"".join(parts)), pos - len(inflater.unused_data)


class _Resolver:
    """Hashes objects as they come and applies each delta as soon as its base is known."""

    def __init__(self, store: DiskObjectStore) -> None:
        self._store = store
        self.entries: list[tuple[bytes, int, int]] = []
        self.ext_refs: set[RawObjectID] = set()
        self.blobs: dict[ObjectID, bytes] = {}
        self._kinds: dict[int, int] = {}  # offset -> type of every object seen
        self._content: dict[int, bytes] = {}  # offset -> content, of resolved objects
        self._by_sha: dict[bytes, int] = {}  # binary id -> offset
        self._deltas: dict[int, tuple[bytes, int]] = {}  # unresolved: offset -> (delta, crc)
        self._after_ofs: dict[int, list[int]] = {}  # base offset -> deltas waiting for it
        self._after_ref: dict[bytes, list[int]] = {}  # base id -> deltas waiting for it
        self._held = 0  # bytes of content held

    def add(self, offset: int, kind: int, content: bytes, crc: int) -> None:
        self._kinds[offset] = kind
        self._settle([(offset, kind, content, crc)])

    def add_delta(self, offset: int, base: int | bytes, delta: bytes, crc: int) -> None:
        self._kinds[offset] = 0  # not known until resolved
        if isinstance(base, int):
            if base not in self._kinds:
                raise PackError(f"malformed pack: delta at {offset} has no object at its base")
            if base in self._content:
                self._settle([self._apply(offset, self._kinds[base], self._content[base],
                                          delta, crc)])
                return
            self._after_ofs.setdefault(base, []).append(offset)
        else:
            known = self._by_sha.get(base)
            if known is not None:
                self._settle([self._apply(offset, self._kinds[known], self._content[known],
                                          delta, crc)])
                return
            self._after_ref.setdefault(base, []).append(offset)
        self._deltas[offset] = (delta, crc)

    def finish(self) -> None:
        """Resolve what waits for objects outside the pack (a thin pack's bases)."""
        progressed = True
        while self._after_ref and progressed:
            progressed = False
            for base in list(self._after_ref):
                if base not in self._after_ref:
                    continue  # resolved meanwhile, through another external base
                try:
                    kind, content = self._store.get_raw(RawObjectID(base))
                except KeyError:
                    continue  # perhaps a delta of this pack that waits for another base
                self.ext_refs.add(RawObjectID(base))
                todo = []
                for offset in self._after_ref.pop(base):
                    delta, crc = self._deltas.pop(offset)
                    todo.append(self._apply(offset, kind, content, delta, crc))
                self._settle(todo)
                progressed = True
        if self._deltas:
            missing = ", ".join(sorted(base.hex() for base in self._after_ref)[:3])
            raise PackError(f"malformed pack: {len(self._deltas)} deltas do not resolve"
                            + (f" (missing bases: {missing})" if missing else ""))

    def _apply(self, offset: int, kind: int, base: bytes, delta: bytes, crc: int
               ) -> tuple[int, int, bytes, int]:
        try:
            content = b"".join(apply_delta(base, delta))
        except (ApplyDeltaError, ValueError, IndexError) as exc:
            raise PackError(f"malformed pack: delta at {offset} does not apply: {exc}") from exc
        if kind != _BLOB and not content:
            raise PackError(f"malformed pack: delta at {offset} resolves to an empty object")
        return offset, kind, content, crc

    def _settle(self, todo: list[tuple[int, int, bytes, int]]) -> None:
        """Hash resolved objects, then resolve the deltas that waited for them."""
        while todo:
            offset, kind, content, crc = todo.pop()
            sha = hashlib.sha1(b"%s %d\x00" % (_NAMES[kind], len(content)))
            sha.update(content)
            raw = sha.digest()
            self._held += len(content)
            if self._held > MAX_INFLATED_BYTES:  # deltas can inflate far beyond their size
                raise _TooLarge
            self.entries.append((raw, offset, crc))
            self._kinds[offset] = kind
            self._content[offset] = content
            self._by_sha[raw] = offset
            hexsha = ObjectID(sha.hexdigest().encode("ascii"))
            if kind == _BLOB:
                self.blobs[hexsha] = content
            else:
                try:  # as dulwich does: a tree, commit or tag must parse
                    ShaFile.from_raw_string(kind, content, sha=hexsha)
                except (ObjectFormatException, ValueError) as exc:
                    raise PackError(f"malformed pack: {_NAMES[kind].decode()} {raw.hex()} "
                                    f"does not parse: {exc}") from exc
            waiting = self._after_ofs.pop(offset, [])
            waiting.extend(self._after_ref.pop(raw, ()))
            for child in waiting:
                delta, child_crc = self._deltas.pop(child)
                todo.append(self._apply(child, kind, content, delta, child_crc))


# -- installing ------------------------------------------------------------------------


def _install(store: DiskObjectStore, data: bytes, entries: list[tuple[bytes, int, int]],
             ext_refs: set[RawObjectID]) -> None:
    """Write the pack (completed with ``ext_refs``) and its index into ``store``."""
    objects = Path(store.path)
    sweep_temp(objects)  # packs a killed process left half-written
    tmp = os.fspath(objects / temp_name("tmp_pack_"))
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "w+b") as f:
            f.write(data)
            pack_sha = data[-_SHA_LEN:]
            if ext_refs:
                f.flush()
                pack_sha, extra = extend_pack(
                    f, ext_refs, get_raw=store.get_raw, object_format=store.object_format,
                    compression_level=store.pack_compression_level)
                entries.extend(extra)
            f.flush()
            if store.fsync_object_files:
                os.fsync(f.fileno())
        entries.sort()
        name = iter_sha1(sha for sha, _, _ in entries).decode("ascii")
        base = os.path.join(store.pack_dir, f"pack-{name}")
        if os.path.exists(base + ".idx"):  # the same objects are already packed
            os.remove(tmp)
            return
        os.chmod(tmp, PACK_MODE)
        os.rename(tmp, base + ".pack")
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    try:
        with GitFile(base + ".idx", "wb", mask=PACK_MODE,
                     fsync=store.fsync_object_files) as out:
            if (store.pack_index_version or DEFAULT_PACK_INDEX_VERSION) == 2:
                out.write(index_v2(entries, pack_sha))
            else:
                write_pack_index(out, entries, pack_sha, version=store.pack_index_version)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(base + ".pack")
        raise


def index_v2(entries: list[tuple[bytes, int, int]], pack_sha: bytes) -> bytes:
    """A version 2 pack index of ``entries`` (sorted (binary id, offset, CRC-32)), byte
    for byte what dulwich's ``write_pack_index_v2`` writes, without a call per entry."""
    count = len(entries)
    fan_out = [0] * 256
    for sha, _, _ in entries:
        fan_out[sha[0]] += 1
    total = 0
    for i, n in enumerate(fan_out):
        total += n
        fan_out[i] = total
    large: list[int] = []
    offsets = []
    for _, offset, _ in entries:
        if offset < 0x80000000:
            offsets.append(offset)
        else:
            offsets.append(0x80000000 + len(large))
            large.append(offset)
    body = b"".join([
        b"\377tOc", struct.pack(">L", 2), struct.pack(">256L", *fan_out),
        b"".join(sha for sha, _, _ in entries),
        struct.pack(f">{count}L", *(crc for _, _, crc in entries)),
        struct.pack(f">{count}L", *offsets), struct.pack(f">{len(large)}Q", *large), pack_sha,
    ])
    return body + hashlib.sha1(body).digest()


def _delegate(store: DiskObjectStore, head: Iterable[bytes], read: Callable[[int], bytes],
              progress: Callable[[bytes], Any] | None) -> None:
    """Hand a large pack (``head`` already read, the rest still in ``read``) to dulwich."""
    with tempfile.TemporaryFile(dir=store.path, prefix="tmp_incoming_") as spill:
        for chunk in head:
            spill.write(chunk)
        while chunk := read(_READ):
            spill.write(chunk)
        spill.seek(0)
        store.add_thin_pack(spill.read, None, progress=progress)
