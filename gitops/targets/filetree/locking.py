"""The inter-process lock of a file-tree target: one sync at a time per root folder.

An exclusive ``flock`` on ``.gitops/lock``, which records its holder (pid, host,
inventory) so that the process that has to wait can say who it waits for. The kernel
releases a ``flock`` when its holder exits, even after ``kill -9``: a lock is never
stale. The file itself stays (emptied on release); it is never followed if a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from typing import Any

from gitops.errors import ConflictError

__all__ = ["LOCK_FILE", "hold"]

LOCK_FILE = "lock"
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_POLL = 0.05  # seconds between attempts while waiting


@contextlib.contextmanager
def hold(meta_fd: int, *, root: str, url: str, inventory: str, timeout: float) -> Iterator[None]:
    """Hold the lock file in folder ``meta_fd`` for the duration of the block.

    Waits up to ``timeout`` seconds (0: one attempt) for another holder, then raises
    ConflictError: ``another sync of ROOT is running (pid N, inventory 'NAME')``.
    OSError (a link or a folder in the lock file's place, say) propagates.
    """
    fd = os.open(LOCK_FILE, _FLAGS, 0o666, dir_fd=meta_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{LOCK_FILE} is not a regular file")
        if not _acquire(fd, timeout):
            raise ConflictError(
                url, f"another sync of {root} is running ({_describe(_holder(fd))})", url=url
            )
        try:
            _record(fd, inventory)
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a waiter must not name a holder that is gone
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL, remaining))


def _record(fd: int, inventory: str) -> None:
    """Write who holds the lock (the file is ours now: nobody else writes it)."""
    body = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "inventory": inventory,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    data = json.dumps(body).encode() + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _holder(fd: int) -> dict[str, Any]:
    """The holder's record, or {} while it is being written (or unreadable)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    pid = holder.get("pid")
    parts = [f"pid {pid}" if isinstance(pid, int) else "pid unknown"]
    host = holder.get("host")
    if isinstance(host, str) and host != socket.gethostname():
        parts[0] += f" on {host}"
    inventory = holder.get("inventory")
    if isinstance(inventory, str):
        parts.append(f"inventory {inventory!r}")
    return ", ".join(parts)
