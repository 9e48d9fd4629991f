"""File-system primitives of the file-tree target: no-follow folder walks, atomic writes,
and the sweep of temporary files that killed writers left behind.

Everything here works relative to folder file descriptors opened with ``O_NOFOLLOW``,
so a symbolic link is never followed, whoever swaps one in. Temporary files are named
``.gitops-tmp-<pid>-<host tag>-<random>``: the pid and a tag of this machine's process
namespace say who wrote them, so :func:`sweep_temps` removes only those of dead
writers on this machine (and, after an hour, those of another machine or boot).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from typing import Self

__all__ = [
    "DIR_FLAGS",
    "READ_FLAGS",
    "Folders",
    "Refused",
    "check_replaceable",
    "open_dir",
    "opened_dirs",
    "read_fd",
    "sweep_temps",
    "temp_name",
    "write_atomic",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: opening a FIFO someone put in place of a file must not hang.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".gitops-tmp-"  # a leading '.': never a resource file name
_TEMP_NAME = re.compile(r"\.gitops-tmp-([0-9]{1,10})-([0-9a-f]{8})-[0-9a-f]{12}")
_OLD_TEMP_NAME = re.compile(r"\.gitops-tmp-([0-9]{1,10})-[0-9a-f]{12}")  # no host tag
#: Seconds after which a temporary file of another machine (or boot) is abandoned for sure.
FOREIGN_TEMP_AGE = 3600.0


class Refused(Exception):
    """Something other than what the target wrote is in the way (``rel`` names it)."""

    def __init__(self, rel: str, reason: str, *, symlink: bool = False) -> None:
        super().__init__(f"{rel}: {reason}")
        self.rel = rel
        self.reason = reason
        self.symlink = symlink


def open_dir(parent_fd: int, name: str, rel: str, *, create: bool) -> tuple[int | None, bool]:
    """Open folder ``name`` without following links: ``(fd, created)``; fd None if missing."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd), False
    except FileNotFoundError:
        if not create:
            return None, False
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
        what = "a symbolic link" if is_link else "not a folder"
        raise Refused(rel, f"is {what}; refusing to go through it", symlink=is_link) from exc
    try:
        os.mkdir(name, dir_fd=parent_fd)
        created = True
    except FileExistsError:  # made concurrently by someone else: theirs, not ours
        created = False
    fd, _ = open_dir(parent_fd, name, rel, create=False)
    if fd is None:
        raise FileNotFoundError(errno.ENOENT, "folder vanished while opening it", rel)
    return fd, created


@contextlib.contextmanager
def opened_dirs(
    root_fd: int, parts: list[str], *, create: bool
) -> Iterator[tuple[list[int], list[tuple[str, int]]]]:
    """Yield the fds of the root and each folder in ``parts`` (fewer if one is missing,
    unless ``create``) and the folders created here as ``(relative path, inode)``."""
    fds = [root_fd]
    created: list[tuple[str, int]] = []
    try:
        for depth, part in enumerate(parts, 1):
            rel = "/".join(parts[:depth])
            fd, new = open_dir(fds[-1], part, rel, create=create)
            if fd is None:
                break
            fds.append(fd)
            if new:
                created.append((rel, os.fstat(fd).st_ino))
        yield fds, created
    finally:
        for fd in fds[1:]:
            os.close(fd)


class Folders:
    """Folder fds opened without following links, cached for a batch of reads.

    ``fd("web/ConfigMap")`` is None when a folder on the way is missing or is a file
    (nothing can be stored below it); a symbolic link on the way raises Refused.
    """

    def __init__(self, root_fd: int) -> None:
        #: folder -> fd, for the folders opened so far (a missing one maps to None)
        self.fds: dict[str, int | None] = {"": root_fd}
        self._opened: list[int] = []

    def fd(self, rel: str) -> int | None:
        if rel in self.fds:
            return self.fds[rel]
        parent, _, name = rel.rpartition("/")
        parent_fd = self.fd(parent)
        fd = None
        if parent_fd is not None:
            try:
                fd, _ = open_dir(parent_fd, name, rel, create=False)
            except Refused as exc:
                if exc.symlink:
                    raise
            if fd is not None:
                self._opened.append(fd)
        self.fds[rel] = fd
        return fd

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self._opened:
            os.close(fd)
        self._opened.clear()


def check_replaceable(dir_fd: int, name: str, rel: str) -> bool:
    """True if ``name`` is a regular file, False if absent; Refused for anything else."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise Refused(rel, "is a symbolic link, not a file this target wrote", symlink=True)
    if not stat.S_ISREG(mode):
        raise Refused(rel, "is not a regular file")
    return True


def write_atomic(dir_fd: int, name: str, data: bytes, *, fsync: bool) -> None:
    """Replace ``name`` in ``dir_fd`` with ``data``: readers see the old or the new file."""
    temp = temp_name()
    fd = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    if fsync:
        os.fsync(dir_fd)  # make the rename itself durable


def read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


# -- temporary files -----------------------------------------------------------------------


@functools.cache
def _host_tag() -> str:
    """8 hex digits naming this machine, boot and process namespace (pids mean something
    only within those)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as file:
        parts.append(file.read().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=4).hexdigest()


def temp_name() -> str:
    """A fresh temporary file name that says which process writes it."""
    return f"{TEMP_PREFIX}{os.getpid()}-{_host_tag()}-{secrets.token_hex(6)}"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine may still be running (unsure: True)."""
    if pid == os.getpid():
        return True  # another thread of ours may be writing right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # it exists (another user's), or the pid is not one we can ask about
    return True


def _abandoned(name: str, info: os.stat_result) -> bool:
    """Whether temporary file ``name`` belongs to a writer that is gone."""
    match = _TEMP_NAME.fullmatch(name)
    if match is not None and match.group(2) == _host_tag():
        return not _alive(int(match.group(1)))
    if match is None and _OLD_TEMP_NAME.fullmatch(name) is None:
        return False  # not a name we write: never touched
    return time.time() - info.st_mtime > FOREIGN_TEMP_AGE


def sweep_temps(dir_fd: int) -> list[str]:
    """Remove the temporary files of dead writers from folder ``dir_fd``; return their names.

    Only regular files whose name this module writes are considered, never through a
    link; a file of a live process (or of this one) is kept, and one written on another
    machine or boot only goes once it is an hour old. Errors are ignored: a sweep is
    housekeeping and must never fail a write.
    """
    removed: list[str] = []
    with contextlib.suppress(OSError), os.scandir(dir_fd) as entries:
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and _abandoned(entry.name, info):
                    os.unlink(entry.name, dir_fd=dir_fd)
                    removed.append(entry.name)
    return removed
