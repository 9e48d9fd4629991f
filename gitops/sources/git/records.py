"""What the cache remembers about each Git artifact, beside the read-only tree itself.

An artifact tree holds exactly the fetched files, so its digest and the blob id and
SHA-256 of every file are kept in a JSON record next to it
(``<cache>/git/records/<artifact key>.json``), and each source remembers its last
artifact (``last-<source key>.json``) so the next checkout can hard-link unchanged
files. Records are an optimisation: a missing or unreadable one is recomputed, never
trusted over the tree. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.cache import ArtifactStore, sweep_temp, temp_name

__all__ = ["ArtifactRecord", "load_last", "load_record", "records_root", "save_last",
           "save_record"]


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact's digest, and each file's blob id, content hash and size."""

    digest: str
    files: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def records_root(store: ArtifactStore) -> Path:
    """Where artifact records and last-artifact pointers live."""
    return store.root / "git" / "records"


def save_record(store: ArtifactStore, key: str, record: ArtifactRecord) -> None:
    """Store ``record`` for the artifact ``key`` (best effort: the cache may be read-only)."""
    _write(records_root(store) / f"{key}.json",
           {"digest": record.digest, "files": record.files, "sha256": record.sha256,
            "sizes": record.sizes})


def load_record(store: ArtifactStore, key: str) -> ArtifactRecord | None:
    """The record of artifact ``key``, or None if missing or malformed."""
    data = _read(records_root(store) / f"{key}.json")
    if data is None:
        return None
    digest, files, hashes = data.get("digest"), data.get("files"), data.get("sha256")
    sizes = data.get("sizes", {})  # records written before sizes were kept have none
    if not (isinstance(digest, str) and isinstance(files, dict) and isinstance(hashes, dict)
            and isinstance(sizes, dict)):
        return None
    return ArtifactRecord(digest, files, hashes, sizes)


def save_last(store: ArtifactStore, source_key: str, artifact_key: str) -> None:
    """Remember ``artifact_key`` as the latest artifact of the source ``source_key``."""
    _write(records_root(store) / f"last-{source_key}.json", {"artifact": artifact_key})


def load_last(store: ArtifactStore, source_key: str) -> str | None:
    """The latest artifact key of ``source_key``, if one was recorded."""
    data = _read(records_root(store) / f"last-{source_key}.json")
    value = data.get("artifact") if data else None
    return value if isinstance(value, str) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temp(path.parent)  # records a killed process left half-written
        tmp = path.parent / temp_name(f".{path.name}")
        try:
            with open(tmp, "x", encoding="utf-8") as handle:
                # dumps, not dump: only the one-shot encoder is C (a record lists every file)
                handle.write(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
