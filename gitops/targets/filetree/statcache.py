"""A stat-keyed cache of parsed files: an untouched file is neither read nor parsed again.

Each entry remembers the file's signature (inode, size, mtime_ns, ctime_ns), a digest
of its bytes and the value parsed from them. A lookup whose ``lstat`` still shows the
same signature returns the *same* value object (callers may rely on identity), unless
the entry is *racy*: its timestamps were within the file system's timestamp
granularity of the moment the batch began, so the file could have been rewritten
within the same clock tick, keeping its size and timestamps (git's "racily clean"
problem). A racy entry is always read again and compared by digest; equal bytes keep
the value, other bytes are parsed anew. A file rewritten with the same bytes (a new
signature) is read and hashed, but not parsed again.

Why a hand edit is always seen: every write to a file moves its ctime to the kernel's
current time, which no user can set. If the entry was not racy, its ctime is older than
the batch start by more than the granularity, so any later write gets a later ctime
and a new signature. What this relies on: a wall clock that does not step backwards
(and, on network file systems, a server clock within :data:`FINE_WINDOW_NS` of ours).

Memory is bounded: an entry survives only while the key is looked up in the current or
the previous batch (two generations), so the cache holds at most the files of the last
two calls. The cache never writes, and does no I/O itself: callers pass the stat and a
reader.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["COARSE_WINDOW_NS", "FINE_WINDOW_NS", "Batch", "StatCache", "is_racy", "signature"]

T = TypeVar("T")

Signature = tuple[int, int, int, int]

#: Racy window for file systems with sub-second timestamps (ext4, xfs, btrfs, tmpfs, APFS):
#: their stamps come from a coarse clock that lags by at most a scheduler tick (1-10 ms).
FINE_WINDOW_NS = 100_000_000
#: Racy window when the ctime is a whole second (ext3, HFS+, FAT's 2 s, some NFS servers).
COARSE_WINDOW_NS = 2_000_000_000


def signature(info: os.stat_result) -> Signature:
    """What identifies one state of a file: inode, size, mtime_ns, ctime_ns."""
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def is_racy(info: os.stat_result, now_ns: int) -> bool:
    """Whether the file could change later without changing :func:`signature`.

    True when its newest timestamp is not older than ``now_ns`` (taken before the file
    was read) by more than the file system's granularity, or lies in the future.
    """
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    window = COARSE_WINDOW_NS if info.st_ctime_ns % 1_000_000_000 == 0 else FINE_WINDOW_NS
    return newest >= now_ns - window


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=20).digest()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    signature: Signature
    digest: bytes
    racy: bool
    value: T


class Batch(Generic[T]):
    """The lookups of one call; see :meth:`StatCache.batch`."""

    def __init__(self, current: dict[Hashable, _Entry[T]], previous: dict[Hashable, _Entry[T]]):
        self._current = current
        self._previous = previous
        self.entries: dict[Hashable, _Entry[T]] = {}
        #: taken before any file of the batch is looked at (see :func:`is_racy`)
        self.started_ns = time.time_ns()
        #: how many lookups read the file, and how many parsed it
        self.reads = 0
        self.parses = 0

    def hit(self, key: Hashable, info: os.stat_result) -> T | None:
        """The cached value of ``key`` if ``info`` (its ``lstat``) shows an unchanged,
        trusted file; None when the file must be read (then call :meth:`get`)."""
        entry = self._current.get(key) or self._previous.get(key)
        if (
            entry is None
            or entry.racy
            or entry.signature
            != (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        ):
            return None
        self.entries[key] = entry
        return entry.value

    def get(
        self,
        key: Hashable,
        info: os.stat_result,
        read: Callable[[], tuple[os.stat_result, bytes]],
        parse: Callable[[bytes], T],
    ) -> T:
        """The value of the file ``key`` whose ``lstat`` is ``info``.

        ``read()`` opens the file and returns ``(fstat of the open file, its bytes)``,
        the stat taken *before* reading, so that a write racing with the read can only
        make the next lookup read again, never keep stale bytes. ``parse(bytes)`` makes
        the value; what either raises propagates (and nothing is cached for ``key``).
        """
        value = self.hit(key, info)
        if value is not None:
            return value
        entry = self.entries.get(key) or self._current.get(key) or self._previous.get(key)
        opened, data = read()
        self.reads += 1
        digest = _digest(data)
        if entry is not None and entry.digest == digest:
            value = entry.value
        else:
            value = parse(data)
            self.parses += 1
        self.entries[key] = _Entry(
            signature(opened), digest, is_racy(opened, self.started_ns), value
        )
        return value


class StatCache(Generic[T]):
    """Values parsed from files, reused while a file's stat signature holds.

    Thread-safe: concurrent batches each see a consistent snapshot; the last to end
    sets the generation the next batch starts from.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[Hashable, _Entry[T]] = {}
        self._previous: dict[Hashable, _Entry[T]] = {}

    @contextmanager
    def batch(self) -> Iterator[Batch[T]]:
        """A batch of lookups; when it ends without error its entries become the newest
        generation and the one before is forgotten."""
        with self._lock:
            batch = Batch(self._current, self._previous)
        yield batch
        with self._lock:
            self._previous, self._current = self._current, batch.entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._current.keys() | self._previous.keys())

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._current, self._previous = {}, {}
