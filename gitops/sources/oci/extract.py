"""Extract a verified tar+gzip layer safely, while it downloads.

:func:`extract_layer` parses the tar stream in place as
:class:`~gitops.sources.oci.verify.VerifiedGunzip` hashes and decompresses the download,
and hands file contents to a few writer threads (creating many small files is latency
bound; the threads overlap it). The digest and size are compared when the stream ends;
any mismatch, unsafe entry or exceeded limit raises
:class:`~gitops.errors.VerificationError` and the caller throws the half-written folder
away (:meth:`gitops.cache.ArtifactStore.materialize` does), so an artifact is used whole
or not at all.

Refused: absolute names, ``..`` components, backslashes and NUL in names; symlinks and
hard links that lead outside the tree (checked by name, then by ``realpath`` of every
link once all are written); writing through a link or over an earlier entry; device
files, FIFOs and sparse files; more than ``max_files`` entries; more than
``max_extracted_size`` bytes of tar stream. This module never writes outside ``dest``,
never follows a link while writing, and returns only when no write is in flight.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gitops.errors import SourceError, VerificationError
from gitops.sources.oci.verify import ExtractLimits, RawStream, VerifiedGunzip

__all__ = ["extract_layer"]

_CHUNK = 1 << 20
_WORKERS = 4
_INLINE = 8 << 20  # larger files are streamed to disk by the reading thread
_IN_FLIGHT = 64 << 20  # bytes handed to writer threads and not yet written, at most
_FILE_MODE, _EXEC_MODE, _DIR_MODE = 0o644, 0o755, 0o755
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def extract_layer(
    raw: RawStream, dest: Path, *, digest: str, size: int, limits: ExtractLimits, display: str
) -> None:
    """Stream a tar+gzip blob into the empty folder ``dest``, verifying ``digest`` and ``size``.

    Raises VerificationError (naming ``display``) for a digest or size mismatch, an
    unsafe entry or an exceeded limit; SourceError when ``dest`` cannot be written or
    ``raw`` (the network) fails. After an error ``dest`` must be discarded.
    """
    if size > limits.max_size:
        raise VerificationError(
            display, f"layer is {size} bytes, over the max_size limit of {limits.max_size}"
        )
    stream = VerifiedGunzip(raw, digest, size, limits, display)
    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="gitops-extract") as pool:
        writer = _TreeWriter(dest, limits, display, pool)
        try:
            archive = tarfile.TarFile(fileobj=stream, mode="r")  # type: ignore[arg-type]
            for member in archive:
                writer.add(archive, member)
            writer.wait()
        except (tarfile.TarError, VerificationError) as exc:
            # Content that is not what was published (tampered, truncated) usually breaks
            # the gzip or tar stream before the digest is known: then the digest is the news.
            if not stream.finished:
                stream.finish()
            if isinstance(exc, VerificationError):
                raise
            raise VerificationError(display, f"layer is not a valid tar archive: {exc}") from exc
    stream.finish()
    writer.check_links()


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, _OPEN_FLAGS, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class _TreeWriter:
    """Writes tar members under ``root``, remembering what each path is."""

    def __init__(self, root: Path, limits: ExtractLimits, display: str,
                 pool: ThreadPoolExecutor) -> None:
        self._root = root
        self._real_root = os.path.realpath(root)
        self._limits = limits
        self._display = display
        self._pool = pool
        self._kinds: dict[str, str] = {"": "dir"}  # relative path -> "dir" | "file" | "link"
        self._writes: dict[str, Future[None]] = {}
        self._queue: deque[tuple[str, Future[None], int]] = deque()
        self._in_flight = 0
        self._entries = 0
        self._bytes = 0

    def _refuse(self, name: str, reason: str) -> VerificationError:
        return VerificationError(self._display,
                                 f"unsafe artifact, refused: entry {name!r} {reason}")

    def _cannot_write(self, name: str, exc: OSError) -> SourceError:
        return SourceError(self._display, f"cannot write {name!r} into the artifact cache: "
                                          f"{exc.strerror or exc}")

    def _name(self, raw: str) -> str:
        """The normalized relative path of a member, or raise."""
        if "\x00" in raw or "\\" in raw:
            raise self._refuse(raw, "has a NUL or backslash in its name")
        if raw.startswith("/"):
            raise self._refuse(raw, "has an absolute path")
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._refuse(raw, "leaves the artifact (..)")
        return "/".join(parts)

    def _parent_dirs(self, name: str, raw: str) -> None:
        """Create the missing parents of ``name``; refuse to pass through a file or link."""
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            kind = self._kinds.get(prefix)
            if kind is None:
                os.mkdir(self._root / prefix, _DIR_MODE)
                self._kinds[prefix] = "dir"
            elif kind != "dir":
                raise self._refuse(raw, f"goes through {prefix!r}, which is a {kind}")

    def add(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Check one member and write it (files possibly by a writer thread)."""
        self._entries += 1
        if self._entries > self._limits.max_files:
            raise VerificationError(
                self._display, f"artifact has more than max_files={self._limits.max_files} "
                               "entries; refused"
            )
        raw = member.name
        name = self._name(raw)
        if not name:  # the root itself ("./")
            if not member.isdir():
                raise self._refuse(raw, "names the root but is not a directory")
            return
        if member.ischr() or member.isblk() or member.isfifo():
            raise self._refuse(raw, "is a device file or FIFO")
        if member.issparse() or not (member.isreg() or member.isdir() or member.issym()
                                     or member.islnk()):
            raise self._refuse(raw, f"has an unsupported type {member.type!r}")
        existing = self._kinds.get(name)
        if existing is not None and not (existing == "dir" and member.isdir()):
            raise self._refuse(raw, "appears twice")
        try:
            self._parent_dirs(name, raw)
            self._create(archive, member, name, raw)
        except OSError as exc:
            raise self._cannot_write(name, exc) from exc

    def _create(self, archive: tarfile.TarFile, member: tarfile.TarInfo, name: str,
                raw: str) -> None:
        path = self._root / name
        if member.isdir():
            if name not in self._kinds:
                os.mkdir(path, _DIR_MODE)
                self._kinds[name] = "dir"
        elif member.isreg():
            self._write_file(archive, member, name, path, raw)
            self._kinds[name] = "file"
        elif member.issym():
            self._check_symlink(name, member.linkname, raw)
            os.symlink(member.linkname, path)
            self._kinds[name] = "link"
        else:  # a hard link: to a regular file extracted earlier
            target = self._name(member.linkname)
            if self._kinds.get(target) != "file":
                raise self._refuse(raw, f"is a hard link to {member.linkname!r}, "
                                        "not to an earlier file of the artifact")
            pending = self._writes.get(target)
            if pending is not None:
                self._result(pending)
            os.link(self._root / target, path, follow_symlinks=False)
            self._kinds[name] = "file"

    def _check_symlink(self, name: str, target: str, raw: str) -> None:
        if not target or target.startswith("/") or "\x00" in target:
            raise self._refuse(raw, f"is a symlink to {target!r}, outside the artifact")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if joined == ".." or joined.startswith("../"):
            raise self._refuse(raw, f"is a symlink to {target!r}, outside the artifact")

    def _write_file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, name: str,
                    path: Path, raw: str) -> None:
        self._bytes += member.size
        if self._bytes > self._limits.max_extracted_size:
            raise VerificationError(
                self._display,
                f"artifact holds more than max_extracted_size={self._limits.max_extracted_size} "
                f"bytes (at entry {raw!r}); refused",
            )
        source = archive.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have content
            raise self._refuse(raw, "has no content")
        mode = _EXEC_MODE if member.mode & 0o111 else _FILE_MODE
        if member.size > _INLINE:
            with os.fdopen(os.open(path, _OPEN_FLAGS, mode), "wb") as out:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
            return
        data = source.read(member.size)
        while self._queue and self._in_flight + len(data) > _IN_FLIGHT:
            self._result(self._queue[0][1])
        future = self._pool.submit(_write, path, data, mode)
        self._writes[name] = future
        self._queue.append((name, future, len(data)))
        self._in_flight += len(data)

    def _result(self, future: Future[None]) -> None:
        """Wait for one write (and those queued before it); raise if it failed."""
        while self._queue:
            queued, done, size = self._queue.popleft()
            self._in_flight -= size
            self._writes.pop(queued, None)
            try:
                done.result()
            except OSError as exc:
                raise self._cannot_write(queued, exc) from exc
            if done is future:
                return

    def wait(self) -> None:
        """Wait until every file is written; raise the first failure."""
        if self._queue:
            self._result(self._queue[-1][1])

    def check_links(self) -> None:
        """Every symlink, followed as the OS would (chains included), stays inside."""
        inside = self._real_root + os.sep
        for name, kind in self._kinds.items():
            if kind != "link":
                continue
            resolved = os.path.realpath(self._root / name)
            if resolved != self._real_root and not resolved.startswith(inside):
                raise self._refuse(name, "is a symlink that resolves outside the artifact")
