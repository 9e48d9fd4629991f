"""Keep the Git cache bounded in size and age: mirrors, artifacts and their records.

:func:`prune_cache` removes mirrors and artifacts unused for ``max_age`` seconds, then
the least recently used until mirrors plus artifacts fit in ``max_bytes``. The source
calls it with ``interval=0`` after every fetch that grew the cache (a new artifact or
new objects), so the bounds hold after each fetch; otherwise at most once per
``interval`` per cache root (a stamp file decides; a new cache only starts the clock),
for the age bound. What the caller is using right now (``keep_*``) is never removed,
nor a mirror another process holds locked. Nothing here ever fetches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import filelock

from gitops.cache import ArtifactStore
from gitops.sources.git.mirror import mirrors_root
from gitops.sources.git.records import records_root

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_BYTES", "PRUNE_INTERVAL", "prune_cache"]

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_AGE = 14 * 24 * 3600.0
PRUNE_INTERVAL = 3600.0
_USED = "gitops-used"


def prune_cache(
    store: ArtifactStore,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_age: float = DEFAULT_MAX_AGE,
    keep_mirrors: frozenset[str] = frozenset(),
    keep_artifacts: frozenset[str] = frozenset(),
    interval: float = PRUNE_INTERVAL,
) -> tuple[list[str], list[str]]:
    """Prune if the last prune is older than ``interval``; return (mirrors, artifacts) removed."""
    stamp = store.root / "git" / "pruned-at"
    now = time.time()
    try:
        if now - stamp.stat().st_mtime < interval:
            return [], []
    except FileNotFoundError:
        if interval > 0:  # a new cache: start the clock, there is nothing old to prune yet
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
            return [], []
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()

    mirrors = _mirrors(store)
    removed_mirrors: list[str] = []
    total = sum(size for _, size, _ in mirrors)
    for used, size, path in mirrors:  # least recently used first
        if path.name in keep_mirrors:
            continue
        if now - used <= max_age and total <= max_bytes:
            continue
        if _remove_mirror(store, path):
            removed_mirrors.append(path.name)
            total -= size
    budget = max(0, max_bytes - total)
    removed = store.prune(max_bytes=budget, max_age=max_age, keep=keep_artifacts)
    _drop_records(store)
    return removed_mirrors, removed


def _mirrors(store: ArtifactStore) -> list[tuple[float, int, Path]]:
    root = mirrors_root(store)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            used = (path / _USED).stat().st_mtime
        except FileNotFoundError:
            used = path.stat().st_mtime
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        found.append((used, size, path))
    found.sort()
    return found


def _remove_mirror(store: ArtifactStore, path: Path) -> bool:
    """Remove a mirror unless another process holds its lock right now."""
    try:
        with store.lock(f"git-{path.name}", timeout=0):
            shutil.rmtree(path, ignore_errors=True)
            return True
    except filelock.Timeout:
        return False


def _drop_records(store: ArtifactStore) -> None:
    """Forget records of artifacts that no longer exist."""
    root = records_root(store)
    if not root.is_dir():
        return
    for record in root.glob("*.json"):
        name = record.name.removesuffix(".json")
        if name.startswith("last-"):
            continue
        if not store.path(name).is_dir():
            with contextlib.suppress(OSError):
                os.unlink(record)
