"""What a real API server's Go types do to a built-in object between decoding and storing it.

A real server decodes each request into Go structs and encodes them again, so some values
come back in a different form than they were sent. Two of those decide drift:

- **Quantities** (``resources.limits``, ``ephemeral-storage``, PVC sizes, LimitRange and
  ResourceQuota values, ...) are stored canonically: ``1000m`` -> ``1``, ``1024Mi`` ->
  ``1Gi`` (:mod:`gitops.testing.kube.quantities`). Which fields hold a quantity comes from
  the recorded OpenAPI schemas (:mod:`gitops.testing.kube.builtin_openapi`). A value that
  is not a quantity is a 400, as on the real server.
- **Byte maps** (Secret ``data``, ConfigMap ``binaryData``: Go ``map[string][]byte``): a
  1.32 server returns ``""`` for an empty value and for ``null`` alike. Servers that stored
  an empty value as a nil slice returned ``null`` instead (Argo CD's ``TestNullSecretData``
  was recorded from one); ``null_empty_bytes=True`` reproduces them. See
  ``docs/kubernetes-emulator.md`` for the provenance.

Custom resources are stored as sent (their schemas have no Go types), so nothing here
touches them. This module never stores and never validates anything else.
"""

from __future__ import annotations

from typing import Any

from gitops.testing.kube import builtin_openapi
from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.quantities import QuantityError, canonical
from gitops.testing.kube.status import bad_request

__all__ = ["canonicalize"]

#: built-in kinds with ``map[string][]byte`` fields, by (group, kind)
_BYTE_MAPS: dict[tuple[str, str], str] = {("", "Secret"): "data", ("", "ConfigMap"): "binaryData"}


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
            _rewrite(obj, path)
    except QuantityError as exc:
        raise bad_request(f'{rtype.kind} in version "{version}" cannot be handled as a {rtype.kind}: {exc}') from None
    if quantities_only:
        return
    field = _BYTE_MAPS.get((rtype.group, rtype.kind))
    values = obj.get(field) if field else None
    if isinstance(values, dict):
        for key, value in values.items():
            if value is None or value == "":
                values[key] = None if null_empty_bytes else ""


def _rewrite(node: Any, path: tuple[str, ...]) -> None:
    """Canonicalize every quantity found at ``path`` below ``node`` (absent parts are skipped)."""
    head, rest = path[0], path[1:]
    if head == "[]":
        slots: list[tuple[Any, Any]] = list(enumerate(node)) if isinstance(node, list) else []
    elif head == "*":
        slots = list(node.items()) if isinstance(node, dict) else []
    else:
        slots = [(head, node[head])] if isinstance(node, dict) and head in node else []
    for key, value in slots:
        if rest:
            _rewrite(value, rest)
        elif value is None and head == "*":
            node[key] = "0"  # a null map value decodes to the zero quantity
        elif value is None:
            del node[key]  # an optional (pointer) quantity set to null is simply absent
        else:
            node[key] = canonical(value)

