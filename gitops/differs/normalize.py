"""Normalization rules of the structural differ: what is not drift, and what is equal.

Fields the server owns (:data:`IGNORED_FIELDS`) are never drift, in any mode of the
structural differ (whether other fields desired does not declare are is the differ's
mode: see :mod:`gitops.differs.structural`); Kubernetes quantities compare by value at
quantity positions only; a Secret's ``stringData`` is compared as the ``data`` the API
server would store, and a ``null`` value of a Secret or ConfigMap equals ``""``. The helpers here run on the hot
path of every reconcile: they must never copy a manifest that needs no change, and
never mutate their input.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, TypeAlias

from gitops.masking import LAST_APPLIED_ANNOTATION
from gitops.quantity import quantities_equal

__all__ = [
    "CONFIG_MAP_SECTIONS",
    "IGNORED_FIELDS",
    "QUANTITY_KEYS",
    "QUANTITY_PARENT_KEYS",
    "IgnoreRules",
    "is_empty",
    "leaf_equal",
    "normalize_config_map",
    "normalize_secret",
    "quantity_equal",
    "strip_ignored",
]

#: Field name -> ``None`` (ignore the field) or the rules for the fields inside it.
IgnoreRules: TypeAlias = Mapping[str, "IgnoreRules | None"]

_KEEP: Any = object()  # a field no rule mentions

#: Fields owned by the API server (or by ``kubectl``), ignored on both sides.
#: ``deletionTimestamp``/``deletionGracePeriodSeconds`` are server-set while an object is
#: being deleted; a manifest cannot set them, so they are never drift either.
IGNORED_FIELDS: IgnoreRules = {
    "status": None,
    "metadata": {
        "uid": None,
        "resourceVersion": None,
        "managedFields": None,
        "creationTimestamp": None,
        "generation": None,
        "selfLink": None,
        "deletionTimestamp": None,
        "deletionGracePeriodSeconds": None,
        "annotations": {LAST_APPLIED_ANNOTATION: None},
    },
}

#: The sections of a ConfigMap whose values are strings, where ``null`` means ``""``.
CONFIG_MAP_SECTIONS = ("data", "binaryData")

#: Mappings whose values are quantities (``resources.limits``, ``ResourceQuota.spec.hard``,
#: ``LimitRange`` ``min``/``max``/``default``..., ``Node.status.capacity``, ``overhead``).
QUANTITY_PARENT_KEYS = frozenset(
    {
        "limits",
        "requests",
        "hard",
        "capacity",
        "allocatable",
        "min",
        "max",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
        "overhead",
    }
)
#: Fields that are quantities themselves (``emptyDir.sizeLimit``, ``storage``).
QUANTITY_KEYS = frozenset({"storage", "sizeLimit"})


def is_empty(value: Any) -> bool:
    """True for ``None``, ``{}`` and ``[]``, which the API server omits: they match an absent field."""
    return value is None or (type(value) in (dict, list) and not value)


def leaf_equal(desired: Any, live: Any, quantity: bool) -> bool:
    """Equality of two scalars: ``1 == 1.0`` but ``True != 1``; quantities by value if ``quantity``."""
    if desired == live:
        return (type(desired) is bool) is (type(live) is bool)
    return quantity and quantity_equal(desired, live)


def quantity_equal(desired: Any, live: Any) -> bool:
    """Equal Kubernetes quantities (``500m`` and ``0.5``); a bool is no quantity (``True != "1"``)."""
    return type(desired) is not bool and type(live) is not bool and quantities_equal(desired, live)


def normalize_secret(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return a Secret as the API server stores it: ``stringData`` merged into ``data``.

    ``stringData`` values are base64-encoded into ``data`` (winning over ``data``, as on
    the server) and ``stringData`` is dropped; ``data`` values are re-encoded in canonical
    base64 (no line breaks); a ``null`` value is the empty value ``""`` (a real server
    returns ``null`` for an empty one: Argo CD's ``TestNullSecretData``). Returns
    ``manifest`` itself when it is already normal.
    """
    data, string_data = manifest.get("data"), manifest.get("stringData")
    if data is not None and not isinstance(data, dict):
        return manifest  # malformed: compare as written
    canonical = {
        key: "" if value is None else _canonical_base64(value) for key, value in (data or {}).items()
    }
    if not isinstance(string_data, dict) and canonical == (data or {}):
        return manifest
    normal = dict(manifest)
    if isinstance(string_data, dict):
        del normal["stringData"]
        canonical.update(
            {key: "" if value is None else _encode(value) for key, value in string_data.items()}
        )
    if canonical or "data" in manifest:
        normal["data"] = canonical
    return normal


def normalize_config_map(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return a ConfigMap with ``null`` values in ``data``/``binaryData`` read as ``""``.

    A value ``""`` and a ``null`` are one value to the API server, which may return
    either. Returns ``manifest`` itself when no value is ``null``.
    """
    normal = manifest
    for section in CONFIG_MAP_SECTIONS:
        values = manifest.get(section)
        if type(values) is dict and None in values.values():
            if normal is manifest:
                normal = dict(manifest)
            normal[section] = {key: "" if item is None else item for key, item in values.items()}
    return normal


def strip_ignored(value: Any, rules: IgnoreRules = IGNORED_FIELDS) -> Any:
    """Return ``value`` without the ignored fields.

    Copies only the mappings that change: ``value`` itself comes back when it holds no
    ignored field (a desired manifest, usually), so callers can test ``is``.
    """
    if type(value) is not dict or value.keys().isdisjoint(rules):
        return value
    stripped: dict[str, Any] | None = None  # built from the first field that changes
    for key, item in value.items():
        inner = rules.get(key, _KEEP)
        if inner is _KEEP:
            if stripped is not None:
                stripped[key] = item
            continue
        kept = _KEEP if inner is None else strip_ignored(item, inner)
        if stripped is None:
            if kept is item:
                continue
            stripped = {}
            for earlier, same in value.items():  # unchanged so far: copy them as they are
                if earlier == key:
                    break
                stripped[earlier] = same
        if kept is not _KEEP:
            stripped[key] = kept
    return value if stripped is None else stripped


def _canonical_base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64encode(base64.b64decode(value)).decode("ascii")
    except (binascii.Error, ValueError):
        return value  # not base64: compare as written


def _encode(value: Any) -> Any:
    return (
        base64.b64encode(value.encode("utf-8")).decode("ascii") if isinstance(value, str) else value
    )
