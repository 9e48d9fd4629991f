"""Hash, count and gunzip a layer in one pass while it downloads.

:class:`VerifiedGunzip` reads compressed chunks from the network, feeds each to sha256
and a byte counter, and decompresses with a bound on the output, so a gzip bomb is
stopped at ``max_extracted_size`` however small it is on the wire. It is a forward-only
file (``read``, ``tell``, ``seek`` ahead) that :mod:`tarfile` can parse in place, without
copying through its stream buffer. :meth:`VerifiedGunzip.finish` drains the rest of the
download and compares digest and size. Nothing here writes to disk.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Protocol

from gitops.errors import VerificationError

__all__ = ["ExtractLimits", "RawStream", "VerifiedGunzip"]

_CHUNK = 1 << 20


class RawStream(Protocol):
    """What is verified: ``read(n)`` returning b"" at the end (a blob download)."""

    def read(self, size: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Bounds on one layer: compressed bytes, uncompressed tar bytes, entries."""

    max_size: int
    max_extracted_size: int
    max_files: int


class VerifiedGunzip:
    """The decompressed stream of a tar+gzip blob whose digest and size are checked."""

    def __init__(self, raw: RawStream, digest: str, size: int, limits: ExtractLimits,
                 display: str) -> None:
        self._raw = raw
        self._expected = digest
        self._size = size
        self._limits = limits
        self._display = display
        self._hash = hashlib.sha256()
        self._read = 0  # compressed bytes received
        self._out = 0  # decompressed bytes produced
        self._position = 0  # decompressed bytes handed out (or skipped)
        self._buffer = bytearray()
        self._decoder = zlib.decompressobj(wbits=31)
        self._raw_eof = False
        #: True once the digest was checked or a size error made checking it moot.
        self.finished = False

    def _fail(self, reason: str, *, final: bool = True) -> VerificationError:
        """An error; a ``final`` one (size, limit) stands without checking the digest."""
        self.finished = self.finished or final
        return VerificationError(self._display, reason)

    def _pull(self) -> bytes:
        data = self._raw.read(_CHUNK)
        if not data:
            self._raw_eof = True
            return b""
        self._read += len(data)
        if self._read > self._size:
            raise self._fail(f"layer is larger than the {self._size} bytes its manifest declares")
        if self._read > self._limits.max_size:
            raise self._fail(f"layer exceeds the max_size limit of {self._limits.max_size} bytes")
        self._hash.update(data)
        return data

    def _decompress_more(self) -> bool:
        """Add decompressed bytes to the buffer; False once the stream is exhausted."""
        decoder = self._decoder
        if decoder.unconsumed_tail:
            data = decoder.unconsumed_tail
        elif decoder.eof:
            data = decoder.unused_data or self._pull()
            if not data:
                return False
            self._decoder = decoder = zlib.decompressobj(wbits=31)  # next gzip member
        else:
            data = self._pull()
            if not data:
                raise self._fail("layer ends in the middle of its gzip stream", final=False)
        try:
            out = decoder.decompress(data, _CHUNK)
        except zlib.error as exc:
            raise self._fail(f"layer is not valid gzip: {exc}", final=False) from exc
        self._out += len(out)
        if self._out > self._limits.max_extracted_size:
            raise self._fail(
                f"layer decompresses beyond the max_extracted_size limit of "
                f"{self._limits.max_extracted_size} bytes"
            )
        self._buffer += out
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (fewer only at the end of the stream)."""
        want = size if size >= 0 else self._limits.max_extracted_size + 1
        while len(self._buffer) < want and self._decompress_more():
            pass
        view = memoryview(self._buffer)
        chunk = bytes(view[:want])
        view.release()
        del self._buffer[:want]
        self._position += len(chunk)
        return chunk

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Skip ahead to ``offset``; a layer is read once, so going back is refused."""
        target = offset if whence == 0 else self._position + offset
        if whence not in (0, 1) or target < self._position:
            raise self._fail("layer is not a plain tar stream (it needs a backward seek)",
                             final=False)
        while self._position < target:
            if not self.read(min(target - self._position, _CHUNK)):
                break
        return self._position

    def finish(self) -> None:
        """Hash what remains of the download (tar padding) and compare digest and size."""
        self.finished = True
        while not self._raw_eof:
            self._pull()
        if self._read != self._size:
            raise self._fail(f"layer has {self._read} bytes, its manifest declares {self._size}")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._expected:
            raise self._fail(
                f"layer content does not match its digest: expected {self._expected}, "
                f"got {actual}; the artifact is refused"
            )
