"""``meta.k8s.io/v1`` Table and PartialObjectMetadata renderings, for ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; the server prints the
columns. The emulator prints Name and Age for every kind (plus Status for Namespaces),
like a CRD without ``additionalPrinterColumns``. Nothing here stores or validates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["human_age", "partial_metadata", "partial_metadata_list", "table"]

_NAME = {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}
_AGE = {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.", "priority": 0}
_STATUS = {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0}


def human_age(timestamp: str | None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d`` like kubectl's duration printer (``<unknown>`` if unset)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def partial_metadata_list(listing: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": listing.get("metadata", {}),
            "items": [partial_metadata(o) for o in listing.get("items", [])]}


def table(kind: str, group: str, objects: list[dict[str, Any]], list_meta: dict[str, Any], include: str) -> dict[str, Any]:
    """A Table of ``objects``; ``include`` is the ``includeObject`` parameter (None/Metadata/Object)."""
    namespace_kind = kind == "Namespace" and group == ""
    columns = [_NAME, _STATUS, _AGE] if namespace_kind else [_NAME, _AGE]
    rows = []
    for obj in objects:
        meta = obj.get("metadata", {})
        cells: list[Any] = [meta.get("name", "")]
        if namespace_kind:
            cells.append((obj.get("status") or {}).get("phase", ""))
        cells.append(human_age(meta.get("creationTimestamp")))
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows}
