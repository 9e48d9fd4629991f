"""The JSON-lines file behind ``jsonl:``: one record per line, replaced atomically.

Two kinds of record, one JSON object per line::

    {"object": {"apiVersion": "v1", "kind": "ConfigMap", ...}}
    {"inventory": "web", "revision": "...", "source": "...", "entries": [...]}

Objects come first, sorted by key, then inventories, sorted by name, so equal states
give byte-equal files (a file worth committing and reviewing). Only ``\\n`` separates
records: JSON escapes it inside strings, while other line breaks (``\\u2028``) may
appear raw in a value.

A write reads, changes and replaces the whole file (temporary file, then ``os.replace``)
while holding an exclusive ``flock`` on ``FILE.lock``, so writers in any process or
thread never lose each other's changes and readers see the old or the new file. This
module must never quote a record's content in an error (it may hold a Secret).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gitops.errors import TargetError, UnreachableError
from gitops.model import Inventory, Resource, ResourceKey

__all__ = ["Busy", "State", "Store", "decode", "encode"]


class Busy(Exception):
    """The sync lock is held by another handle; ``holder`` is what it wrote (a pid)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@dataclass
class State:
    """Everything the file holds."""

    objects: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    inventories: dict[str, Inventory] = field(default_factory=dict)


def encode(value: Any) -> bytes:
    """``value`` as one line of JSON; ValueError/TypeError for what JSON cannot hold."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def decode(line: bytes) -> Any:
    """Inverse of :func:`encode`."""
    return json.loads(line)


class Store:
    """The file at ``path``; ``url`` names the target in errors."""

    def __init__(self, path: Path, url: str, *, fsync: bool) -> None:
        self.path = path
        self.url = url
        self.fsync = fsync

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> State:
        """The current state; empty when the file does not exist yet. Never writes."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise UnreachableError(
                f"{self.path}: cannot read: {exc.strerror}", url=self.url
            ) from exc
        return self._parse(data)

    def _parse(self, data: bytes) -> State:
        state = State()
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                record = decode(line)
                if not isinstance(record, dict):
                    raise TypeError("not an object")
                if "object" in record:
                    resource = Resource.from_manifest(record["object"])
                    state.objects[resource.key] = record["object"]
                else:
                    name = record.pop("inventory")
                    state.inventories[str(name)] = Inventory.from_dict(record)
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                raise TargetError(
                    f"{self.path}: line {number} is not a gitops record "
                    f"({type(exc).__name__}); fix or remove the line",
                    url=self.url,
                ) from None
        return state

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        """Read the state under the write lock, let the caller change it, write it back."""
        with self._flock(self._sibling(".lock"), blocking=True):
            state = self.read()
            before = self._serialize(state)
            yield state
            after = self._serialize(state)
            if after != before:
                self._replace(after)

    @contextlib.contextmanager
    def sync_lock(self, timeout: float) -> Iterator[None]:
        """Hold ``FILE.sync.lock`` exclusively; :class:`Busy` after ``timeout`` seconds."""
        with self._flock(self._sibling(".sync.lock"), blocking=False, timeout=timeout) as handle:
            handle.truncate(0)
            handle.write(str(os.getpid()).encode())
            handle.flush()
            yield

    def _serialize(self, state: State) -> bytes:
        lines = [encode({"object": state.objects[key]}) for key in sorted(state.objects)]
        lines += [
            encode({"inventory": name, **inventory.to_dict()})
            for name, inventory in sorted(state.inventories.items())
        ]
        return b"".join(line + b"\n" for line in lines)

    def _replace(self, data: bytes) -> None:
        folder = self.path.parent
        self._sweep(folder)
        temp = folder / f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            with open(temp, "xb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise UnreachableError(
                f"{self.path}: cannot write: {exc.strerror}", url=self.url
            ) from exc
        if self.fsync:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _sweep(self, folder: Path) -> None:
        """Remove temporary files that processes which no longer run left behind."""
        for temp in folder.glob(f".{self.path.name}.tmp-*-*"):
            pid = temp.name.rsplit("-", 2)[-2]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    temp.unlink()

    # -- locks -----------------------------------------------------------------------------

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    @contextlib.contextmanager
    def _flock(self, path: Path, *, blocking: bool, timeout: float = 0.0) -> Iterator[BinaryIO]:
        try:
            handle = open(path, "a+b")  # noqa: SIM115 - closed below, after unlocking
        except OSError as exc:
            raise UnreachableError(f"{path}: cannot open: {exc.strerror}", url=self.url) from exc
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        raise Busy(handle.read(32).decode(errors="replace")) from None
                    time.sleep(0.05)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
