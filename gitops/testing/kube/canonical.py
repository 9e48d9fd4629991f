"""What a real API server's Go types do to a built-in object between decoding and storing it.

A real server decodes each request into Go structs and encodes them again, so some values
come back in a different form than they were sent. Two of those decide drift:

- **Quantities** (``resources.limits``, ``ephemeral-storage``, PVC sizes, LimitRange and
  ResourceQuota values, ...) are stored canonically: ``1000m`` -> ``1``, ``1024Mi`` ->
  ``1Gi`` (:mod:`gitops.testing.kube.quantities`). Which fields hold a quantity comes from
  the recorded OpenAPI schemas (:mod:`gitops.testing.kube.builtin_openapi`). A value that
  is not a quantity is a 400, as on the real server.
- **Microsecond timestamps** (``metav1.MicroTime``: a Lease's ``acquireTime`` and
  ``renewTime``, an Event's ``eventTime``) must be written as
  ``2006-01-02T15:04:05.000000Z07:00`` (exactly six fraction digits, as Go parses that
  layout; anything else is a 400) and are stored in UTC (``+02:00`` -> ``Z``).
- **Byte maps** (Secret ``data``, ConfigMap ``binaryData``: Go ``map[string][]byte``): a
  1.32 server returns ``""`` for an empty value and for ``null`` alike. Servers that stored
  an empty value as a nil slice returned ``null`` instead (Argo CD's ``TestNullSecretData``
  was recorded from one); ``null_empty_bytes=True`` reproduces them. See
  ``docs/kubernetes-emulator.md`` for the provenance.

Custom resources are stored as sent (their schemas have no Go types), so nothing here
touches them. This module never stores and never validates anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from gitops.testing.kube import builtin_openapi
from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.quantities import QuantityError, canonical
from gitops.testing.kube.status import bad_request

__all__ = ["MICROTIME_LAYOUT", "MicroTimeError", "canonicalize", "microtime"]

#: built-in kinds with ``map[string][]byte`` fields, by (group, kind)
_BYTE_MAPS: dict[tuple[str, str], str] = {("", "Secret"): "data", ("", "ConfigMap"): "binaryData"}
#: kinds whose MicroTime fields are Go structs, not pointers: ``null`` stays (others drop it)
_MICROTIME_STRUCTS = frozenset({("", "Event"), ("events.k8s.io", "Event")})
MICROTIME_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(.*)$", re.DOTALL)
_FRACTION = re.compile(r"^\.(\d{6})(.*)$", re.DOTALL)
_ZONE = re.compile(r"^(?:Z|([+-])(\d{2}):(\d{2}))$")


class MicroTimeError(ValueError):
    """A value Go's ``time.Parse(RFC3339Micro, ...)`` refuses; worded like Go's error."""


def microtime(value: object) -> str:
    """A MicroTime as the server stores it (UTC, six fraction digits); raises :class:`MicroTimeError`."""
    if not isinstance(value, str):
        json_type = "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "object" if isinstance(value, dict) else "array"
        raise MicroTimeError(f"json: cannot unmarshal {json_type} into Go value of type string (want {MICROTIME_LAYOUT})")
    whole = _DATE_TIME.match(value)
    if whole is None:
        raise MicroTimeError(f'parsing time "{value}" as "{MICROTIME_LAYOUT}": cannot parse "{value}" as "2006"')
    fraction = _FRACTION.match(whole.group(7))
    if fraction is None:
        raise MicroTimeError(f'parsing time "{value}" as "{MICROTIME_LAYOUT}": cannot parse "{whole.group(7)}" as ".000000"')
    zone = _ZONE.match(fraction.group(2))
    if zone is None:
        raise MicroTimeError(f'parsing time "{value}" as "{MICROTIME_LAYOUT}": cannot parse "{fraction.group(2)}" as "Z07:00"')
    offset = timedelta(0)
    if zone.group(1):
        offset = timedelta(hours=int(zone.group(2)), minutes=int(zone.group(3))) * (1 if zone.group(1) == "+" else -1)
    try:
        year, month, day, hour, minute, second = (int(whole.group(i)) for i in range(1, 7))
        parsed = datetime(year, month, day, hour, minute, second, int(fraction.group(1)), tzinfo=timezone(offset))
    except ValueError as exc:
        raise MicroTimeError(f'parsing time "{value}": {exc}') from None
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonicalize(rtype: ResourceType, version: str, obj: dict[str, Any], *, null_empty_bytes: bool = False,
                 quantities_only: bool = False) -> None:
    """Rewrite ``obj`` in place as the real server would store it (built-in kinds only).

    ``quantities_only`` leaves byte maps alone: an applied configuration keeps its ``""``
    (server-side apply reads ``null`` as "not set"), and the merged object is stored as
    usual. Raises a 400 :class:`~gitops.testing.kube.status.StatusError` naming the kind
    when a quantity field holds something that is not a quantity.
    """
    if rtype.custom:
        return
    try:
        for path in builtin_openapi.quantity_paths(rtype.group, version, rtype.kind):
            _rewrite(obj, path, _quantity)
        keep_null = (rtype.group, rtype.kind) in _MICROTIME_STRUCTS
        for path in builtin_openapi.microtime_paths(rtype.group, version, rtype.kind):
            _rewrite(obj, path, _microtime_struct if keep_null else _microtime_pointer)
    except (QuantityError, MicroTimeError) as exc:
        raise bad_request(f'{rtype.kind} in version "{version}" cannot be handled as a {rtype.kind}: {exc}') from None
    if quantities_only:
        return
    field = _BYTE_MAPS.get((rtype.group, rtype.kind))
    values = obj.get(field) if field else None
    if isinstance(values, dict):
        for key, value in values.items():
            if value is None or value == "":
                values[key] = None if null_empty_bytes else ""


#: how a leaf is rewritten: (container, key, value, is_map_value) -> None
Leaf = Callable[[Any, Any, Any, bool], None]


def _quantity(node: Any, key: Any, value: Any, in_map: bool) -> None:
    if value is None and in_map:
        node[key] = "0"  # a null map value decodes to the zero quantity
    elif value is None:
        del node[key]  # an optional (pointer) quantity set to null is simply absent
    else:
        node[key] = canonical(value)


def _microtime_pointer(node: Any, key: Any, value: Any, in_map: bool) -> None:
    if value is None:
        del node[key]
    else:
        node[key] = microtime(value)


def _microtime_struct(node: Any, key: Any, value: Any, in_map: bool) -> None:
    if value is not None:
        node[key] = microtime(value)


def _rewrite(node: Any, path: tuple[str, ...], leaf: Leaf) -> None:
    """Rewrite every value found at ``path`` below ``node`` with ``leaf`` (absent parts are skipped)."""
    head, rest = path[0], path[1:]
    if head == "[]":
        slots: list[tuple[Any, Any]] = list(enumerate(node)) if isinstance(node, list) else []
    elif head == "*":
        slots = list(node.items()) if isinstance(node, dict) else []
    else:
        slots = [(head, node[head])] if isinstance(node, dict) and head in node else []
    for key, value in slots:
        if rest:
            _rewrite(value, rest, leaf)
        else:
            leaf(node, key, value, head == "*")

