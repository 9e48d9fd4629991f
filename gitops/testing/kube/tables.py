"""``meta.k8s.io/v1`` Table and PartialObjectMetadata renderings, for ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; the server prints the
columns. Built-in kinds are printed by :mod:`gitops.testing.kube.printers`; custom
resources as the real server's CRD table convertor does: Name, then the served version's
``additionalPrinterColumns`` (or a single ``Age`` column of type ``date`` when it declares
none), each cell evaluated from the column's ``jsonPath`` (:mod:`.jsonpath`; the first
result, ``null`` when there is none). Nothing here stores or validates.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.jsonpath import JsonPath, JsonPathError, compile_path
from gitops.testing.kube.printers import NAME, Printer, age, builtin_printer, parse_time

__all__ = ["custom_printer", "partial_metadata", "partial_metadata_list", "table"]

#: what a CRD version without ``additionalPrinterColumns`` is printed with (apiextensions' default)
DEFAULT_CRD_COLUMNS: tuple[dict[str, Any], ...] = ({
    "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
    "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
},)


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def partial_metadata_list(listing: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": listing.get("metadata", {}),
            "items": [partial_metadata(o) for o in listing.get("items", [])]}


@functools.lru_cache(maxsize=512)
def _compiled(path: str) -> JsonPath | None:
    try:
        return compile_path(path)
    except JsonPathError:
        return None  # refused when the CRD was written; a column that cannot be read stays empty


def _go_text(value: Any) -> str:
    """A value as client-go's jsonpath prints it: strings as they are, maps and lists as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _cell(kind: str, value: Any) -> Any:
    """``cellForJSONValue`` of the CRD table convertor (``string`` columns print any value)."""
    if kind == "string":
        return None if value is None else _go_text(value)
    if value is None or isinstance(value, bool) != (kind == "boolean"):
        return None
    if kind == "integer" and isinstance(value, int | float):
        return int(value)
    if kind == "number" and isinstance(value, int | float):
        return float(value)
    if kind == "boolean":
        return value
    if kind == "date" and isinstance(value, str):
        if value in ("", "null"):
            return "<unknown>"  # the zero time
        return age(value) if parse_time(value) is not None else "<invalid>"
    return None


def custom_printer(rtype: ResourceType, version: str) -> Printer:
    """The columns and row function of a custom resource served at ``version``."""
    specs = rtype.printer_columns.get(version) or DEFAULT_CRD_COLUMNS
    columns = [NAME] + [{
        "name": spec.get("name", ""), "type": spec.get("type", "string"), "format": spec.get("format", ""),
        "description": spec.get("description") or f"Custom resource definition column (in JSONPath format): {spec.get('jsonPath', '')}",
        "priority": int(spec.get("priority") or 0),
    } for spec in specs]
    paths = [(_compiled(str(spec.get("jsonPath", ""))), str(spec.get("type", "string"))) for spec in specs]

    def cells(obj: dict[str, Any]) -> list[Any]:
        row: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
        for path, kind in paths:
            found = path.find(obj) if path is not None else []
            row.append(_cell(kind, found[0]) if found else None)
        return row

    return columns, cells


def table(rtype: ResourceType, version: str, objects: list[dict[str, Any]], list_meta: dict[str, Any],
          include: str) -> dict[str, Any]:
    """A Table of ``objects``; ``include`` is the ``includeObject`` parameter (None/Metadata/Object)."""
    columns, cells = custom_printer(rtype, version) if rtype.custom else builtin_printer(rtype.group, rtype.kind)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows}
