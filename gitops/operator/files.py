"""Applications declared in files (``gitops run -f apps.yaml``), their status in their targets.

:class:`ApplicationFiles` loads the files and notices when they change (a new inode,
size or modification time), so a running operator reloads them. :class:`TargetStatusStore`
keeps each application's status record in its own target
(:meth:`~gitops.targets.base.Target.write_status`: ``.gitops/status/`` in a folder, a
ConfigMap in a cluster), so ``gitops status``, ``history``, ``suspend`` and ``rollback``
work from another process, whether or not ``gitops run`` is running.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gitops.apps.load import Declarations, load_declarations
from gitops.apps.spec import Application
from gitops.errors import ConflictError
from gitops.operator.status import AppStatus
from gitops.options import opened_with_key
from gitops.plugins import open_target
from gitops.targets.base import Target

__all__ = ["ApplicationFiles", "TargetStatusStore"]

log = logging.getLogger("gitops.operator")

_Signature = tuple[int, int, int, int] | None
_UPDATE_PATIENCE = 60.0  # seconds a status update waits for a target busy syncing


class ApplicationFiles:
    """The applications declared in a list of YAML files."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if not paths:
            raise ValueError("at least one file is needed")
        self.paths = tuple(Path(p) for p in paths)
        self._seen: tuple[_Signature, ...] = ()

    def load(self) -> list[Application]:
        """Every application in the files; InputError naming the file and document at fault."""
        return list(self.load_declarations().applications)

    def load_declarations(self) -> Declarations:
        """Every document in the files (applications, image automation, application sets);
        InputError naming the file and document at fault."""
        signatures = self._signatures()
        declared = load_declarations(*self.paths)
        self._seen = signatures
        return declared

    def seen(self) -> None:
        """Take the files as they are now as seen (after a load that failed)."""
        self._seen = self._signatures()

    def changed(self) -> bool:
        """Whether a file changed (or appeared, or vanished) since the last :meth:`load`."""
        return self._signatures() != self._seen

    def _signatures(self) -> tuple[_Signature, ...]:
        out: list[_Signature] = []
        for path in self.paths:
            try:
                info = os.stat(path)
            except OSError:
                out.append(None)
                continue
            out.append((info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
        return tuple(out)


class TargetStatusStore:
    """Application status kept in each application's target (its status record).

    Opens one handle per target URL and options (closed by :meth:`close`). A target
    plugin that keeps no status (``supports_status`` false) gets its status kept in
    memory only, with one warning: history then lasts as long as the process.
    """

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], Target] = {}
        self._used_by: dict[str, tuple[str, str]] = {}  # application key -> its target's key
        self._memory: dict[str, AppStatus] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def target(self, app: Application) -> Target:
        """The (shared) target handle the status of ``app`` is kept in."""
        key = (app.spec.target.url, opened_with_key(app.spec.target.url, app.target_options))
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                target = self._targets[key] = open_target(
                    app.spec.target.url, **app.target_options
                )
            before, self._used_by[app.key] = self._used_by.get(app.key), key
            unused = self._unused(before) if before not in (None, key) else None
        self._close(unused)
        return target

    def release(self, app: Application) -> None:
        """Drop what is kept for ``app``, which is no longer run: its status held in
        memory, and its target handle once no other application uses it (a long-lived
        operator whose applications come and go keeps no handle, connection or watch of
        a target nothing reads any more). Its next read opens the handle again."""
        with self._lock:
            self._memory.pop(app.key, None)
            self._warned.discard(app.key)
            before = self._used_by.pop(app.key, None)
            unused = self._unused(before) if before is not None else None
        self._close(unused)

    def _unused(self, key: tuple[str, str]) -> Target | None:
        """The handle of ``key``, taken out, if no application uses it (lock held)."""
        if key in self._used_by.values():
            return None
        return self._targets.pop(key, None)

    @staticmethod
    def _close(target: Target | None) -> None:
        if target is None:
            return
        try:
            target.close()
        except Exception:
            log.warning("closing %s failed", target.url, exc_info=True)

    def read(self, app: Application) -> AppStatus | None:
        """The status record of ``app`` in its target, or None."""
        target = self.target(app)
        if not target.supports_status:
            self._warn(app, target)
            return self._memory.get(app.key)
        record = target.read_status(app.inventory_name)
        if record is None:
            return None
        return AppStatus.from_dict(record, where=f"{target.url}: status of {app.key}")

    def write(self, app: Application, status: AppStatus) -> None:
        """Store the status record of ``app`` in its target."""
        target = self.target(app)
        if not target.supports_status:
            self._warn(app, target)
            self._memory[app.key] = status
            return
        target.write_status(app.inventory_name, status.to_dict())

    def update(self, app: Application,
               change: Callable[[AppStatus | None], AppStatus]) -> AppStatus:
        """Read, change and write the record under the target's lock (the one syncs hold),
        so ``gitops suspend`` and a running ``gitops run`` never overwrite each other.

        A target busy with a long sync is waited for (its lock times out, then again),
        up to ``_UPDATE_PATIENCE`` seconds.
        """
        target = self.target(app)
        if not target.supports_status:
            status = change(self.read(app))
            self.write(app, status)
            return status
        deadline = time.monotonic() + _UPDATE_PATIENCE
        while True:
            try:
                with target.lock(app.inventory_name):
                    status = change(self.read(app))
                    self.write(app, status)
                    return status
            except ConflictError:
                if time.monotonic() >= deadline:
                    raise

    def _warn(self, app: Application, target: Target) -> None:
        if app.key not in self._warned:
            self._warned.add(app.key)
            log.warning("%s: target %s keeps no status; history is kept in memory only",
                        app.key, target.url, extra={"app": app.key})

    def close(self) -> None:
        """Close the target handles."""
        with self._lock:
            targets, self._targets = list(self._targets.values()), {}
            self._used_by.clear()
        for target in targets:
            self._close(target)
