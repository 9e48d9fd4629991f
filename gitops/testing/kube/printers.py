"""Server-side printing of built-in kinds: the columns and cells of ``kubectl get``.

A real server prints each built-in kind with a handler of ``pkg/printers/internalversion``
(always in wide mode: kubectl hides the ``priority`` > 0 columns unless ``-o wide``). The
emulator has the handlers ``kubectl get`` of an operator's objects needs: Namespaces (Name,
Status, Age), Events (Last Seen, Type, Reason, Object, Message, and the wide Subobject,
Source, First Seen, Count, Name), Leases (Name, Holder, Age); every other built-in kind
prints Name and Age. Ages are apimachinery's ``duration.HumanDuration``. Nothing here
stores or validates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gitops.testing.kube import builtin_openapi
from gitops.testing.kube.events import to_core

__all__ = ["AGE", "NAME", "Printer", "age", "builtin_printer", "human_duration", "parse_time"]

#: (column definitions, object -> cells)
Printer = tuple[list[dict[str, Any]], Callable[[dict[str, Any]], list[Any]]]

NAME = {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}
AGE = {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.", "priority": 0}
_STATUS = {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0}


def parse_time(timestamp: str) -> datetime | None:
    """An RFC 3339 timestamp (any fraction, ``Z`` or an offset) as an aware datetime, else None."""
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None and "T" in timestamp.upper() else None


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ``42s``, ``3m5s``, ``15m``, ``5h3m``, ``3d4h``, ``2y10d``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" if whole % 60 == 0 else f"{minutes}m{whole % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> str:
    """Time since ``timestamp`` as the server prints it (``<unknown>`` when unset or unreadable)."""
    then = parse_time(timestamp) if isinstance(timestamp, str) and timestamp else None
    if then is None:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _name_age(obj: dict[str, Any]) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), age(meta.get("creationTimestamp"))]


def _namespace(obj: dict[str, Any]) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), (obj.get("status") or {}).get("phase", ""), age(meta.get("creationTimestamp"))]


@functools.cache
def _description(group: str, schema: str, field: str) -> str:
    found = builtin_openapi.schema(group, "v1", schema) or {}
    return str(((found.get("properties") or {}).get(field) or {}).get("description", ""))


def _column(name: str, description: str, *, priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": "string", "format": fmt, "description": description, "priority": priority}


def _event_columns() -> list[dict[str, Any]]:
    def event(field: str) -> str:
        return _description("", "io.k8s.api.core.v1.Event", field)

    return [
        _column("Last Seen", event("lastTimestamp")),
        _column("Type", event("type")),
        _column("Reason", event("reason")),
        _column("Object", event("involvedObject")),
        _column("Subobject", _description("", "io.k8s.api.core.v1.ObjectReference", "fieldPath"), priority=1),
        _column("Source", event("source"), priority=1),
        _column("Message", event("message")),
        _column("First Seen", event("firstTimestamp"), priority=1),
        _column("Count", event("count"), priority=1),
        {**NAME, "priority": 1},
    ]


def _event(obj: dict[str, Any]) -> list[Any]:
    """``printEvent`` of a core/v1 Event (events.k8s.io Events are printed after conversion)."""
    first = age(obj.get("firstTimestamp")) if obj.get("firstTimestamp") else age(obj.get("eventTime"))
    last = age(obj.get("lastTimestamp")) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 0
    series = obj.get("series")
    if isinstance(series, dict):
        last = age(series.get("lastObservedTime"))
        count = series.get("count") or 0
    elif not count:
        count = 1  # singleton events of the new API carry no count
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [last, obj.get("type", ""), obj.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {instance}" if instance else component, str(obj.get("message", "")).strip(), first,
            int(count), (obj.get("metadata") or {}).get("name", "")]


def _lease(obj: dict[str, Any]) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), (obj.get("spec") or {}).get("holderIdentity") or "", age(meta.get("creationTimestamp"))]


def builtin_printer(group: str, kind: str) -> Printer:
    """The columns and row function of a built-in kind (Name and Age for the kinds not listed)."""
    if group == "" and kind == "Namespace":
        return [NAME, _STATUS, AGE], _namespace
    if group == "" and kind == "Event":
        return _event_columns(), _event
    if group == "events.k8s.io" and kind == "Event":
        return _event_columns(), lambda obj: _event(to_core(obj))  # printed as the core Event it is stored as
    if group == "coordination.k8s.io" and kind == "Lease":
        holder = _description("coordination.k8s.io", "io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")
        return [NAME, _column("Holder", holder), AGE], _lease
    return [NAME, AGE], _name_age
