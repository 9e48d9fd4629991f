"""The structural differ: desired compared as a subset of live, after normalization.

Rules (see :mod:`gitops.differs.normalize`): server-owned fields are ignored; fields
desired does not declare are not drift (mappings compare key by key, lists of equal
length element by element, lists of different length are drift); a ``null`` field in
desired declares nothing (templates leave ``annotations:`` empty), and ``{}``/``[]`` match
an absent field (the API server omits them); quantities compare by value at quantity
positions; ``1 == 1.0`` but ``True != 1``; a Secret's ``stringData`` is compared as ``data``.

Two passes keep the hot path cheap: a recursive "equal?" walk that copies nothing and
builds nothing, then, only for a changed pair, a walk that builds the RFC 6902 patch and
the live object projected onto desired's fields for the unified diff. This differ must
never mutate its inputs, never emit ``remove`` (live-only fields are not drift), and
never show a Secret value: in ``text`` and in ``patch`` Secret values are masked (see
:mod:`gitops.masking`), so the patch of a Secret is for display only — the engine
applies desired, never the patch.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Final

import yaml

from gitops.differs.base import Differ
from gitops.differs.normalize import (
    IGNORED_FIELDS,
    QUANTITY_KEYS,
    QUANTITY_PARENT_KEYS,
    IgnoreRules,
    is_empty,
    leaf_equal,
    normalize_secret,
    strip_ignored,
)
from gitops.masking import mask_patch, mask_secret, mask_secret_pair
from gitops.model import Diff, Resource
from gitops.quantity import quantities_equal

__all__ = ["StructuralDiffer"]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The C dumper when available, without anchors: a diff must read as plain YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# Stands for a field live does not have; never equal to any value.
_ABSENT: Final[Any] = object()
_UNCHANGED: Final = Diff(changed=False)


class StructuralDiffer(Differ):
    """Subset comparison of desired against live, with Kubernetes normalization."""

    name: ClassVar[str] = "structural"

    def diff(self, desired: Resource, live: Resource | None) -> Diff:
        """Return whether ``live`` drifted from ``desired``, with a patch and a masked text.

        ``live is None`` (not created yet) gives ``changed=True``, no patch, and a text
        from nothing to desired.
        """
        secret = desired.key.kind == "Secret"  # masked whatever its group
        if live is None:
            shown = mask_secret(desired.manifest) if secret else desired.manifest
            return Diff(changed=True, text=_unified(str(desired.key), None, shown))
        want, have = desired.manifest, live.manifest
        if secret and not desired.key.group:  # stringData is a core Secret's write-only field
            want, have = normalize_secret(want), normalize_secret(have)
        if want is have or _rules_equal(want, have, IGNORED_FIELDS):
            return _UNCHANGED
        return _changed(str(desired.key), want, have, secret)


# -- pass 1: equal? ---------------------------------------------------------------------
# _value_equal, _map_equal and _list_equal implement one relation; _map_equal inlines
# _value_equal because it runs for every field of every manifest.


def _rules_equal(desired: dict[str, Any], live: dict[str, Any], rules: IgnoreRules) -> bool:
    """Subset equality of two mappings, skipping the fields ``rules`` ignores."""
    for key, want in desired.items():
        rule = rules.get(key, _ABSENT)
        if rule is None or want is None:
            continue
        have = live.get(key, _ABSENT)
        if rule is _ABSENT:
            equal = _value_equal(want, have, key, False)
        elif type(want) is dict and type(have) is dict:
            equal = _rules_equal(want, have, rule)
        else:
            equal = _value_equal(strip_ignored(want, rule), have, key, False)
        if not equal:
            return False
    return True


def _value_equal(want: Any, have: Any, key: object, quantities: bool) -> bool:
    """Subset equality of one desired value and its live counterpart (``_ABSENT`` if none)."""
    if want is have:
        return True
    kind = type(want)
    if kind is dict and type(have) is dict:
        return _map_equal(want, have, key in QUANTITY_PARENT_KEYS)
    if kind is list and type(have) is list:
        return len(want) == len(have) and _list_equal(want, have)
    if (
        kind is not dict
        and kind is not list
        and leaf_equal(want, have, quantities or key in QUANTITY_KEYS)
    ):
        return True
    return is_empty(want) and (have is _ABSENT or is_empty(have))


def _map_equal(desired: dict[str, Any], live: dict[str, Any], quantities: bool) -> bool:
    for key, want in desired.items():
        have = live.get(key, _ABSENT)
        kind = type(want)
        if kind is str:  # the most common leaf: test it first
            if want == have:
                continue
        elif kind is dict:
            if type(have) is dict:
                if _map_equal(want, have, key in QUANTITY_PARENT_KEYS):
                    continue
                return False
        elif kind is list:
            if type(have) is list:
                if len(want) == len(have) and _list_equal(want, have):
                    continue
                return False
        elif want is None:  # declares nothing
            continue
        elif want == have:
            if (kind is bool) is (type(have) is bool):
                continue
            return False
        if (quantities or key in QUANTITY_KEYS) and quantities_equal(want, have):
            continue
        if not (is_empty(want) and (have is _ABSENT or is_empty(have))):
            return False
    return True


def _list_equal(desired: list[Any], live: list[Any]) -> bool:
    for want, have in zip(desired, live, strict=True):
        kind = type(want)
        if kind is str and want == have:
            continue
        if kind is dict and type(have) is dict:
            if not _map_equal(want, have, False):
                return False
        elif not _value_equal(want, have, None, False):
            return False
    return True


# -- pass 2: patch and projection, for changed pairs only -------------------------------


def _changed(key: str, desired: dict[str, Any], live: dict[str, Any], secret: bool) -> Diff:
    ops: list[dict[str, Any]] = []
    projected = _reconcile_map(desired, live, False, "", ops, IGNORED_FIELDS)
    shown = strip_ignored(desired)
    patch: tuple[dict[str, Any], ...] = tuple(ops)
    if secret:
        shown, projected = mask_secret_pair(shown, projected)
        patch = mask_patch(patch)
    return Diff(changed=True, patch=patch, text=_unified(key, projected, shown))


def _reconcile_map(
    desired: dict[str, Any],
    live: dict[str, Any],
    quantities: bool,
    path: str,
    ops: list[dict[str, Any]],
    rules: IgnoreRules | None = None,
) -> dict[str, Any]:
    """Append the ops that make ``live`` match ``desired``; return ``live`` projected onto it."""
    projected: dict[str, Any] = {}
    for key, want in desired.items():
        rule = rules.get(key, _ABSENT) if rules else _ABSENT
        if rule is None:
            continue
        if want is None:  # declares nothing: shown as is on both sides
            projected[key] = None
            continue
        have = live.get(key, _ABSENT)
        at = f"{path}/{_escape(key)}"
        if rule is not _ABSENT and type(want) is dict and type(have) is dict:
            value = _reconcile_map(want, have, False, at, ops, rule)
        else:
            want = want if rule is _ABSENT else strip_ignored(want, rule)
            value = _reconcile(want, have, key, quantities, at, ops)
        if value is not _ABSENT:
            projected[key] = value
    return projected


def _reconcile(
    want: Any, have: Any, key: object, quantities: bool, path: str, ops: list[dict[str, Any]]
) -> Any:
    """Like :func:`_reconcile_map` for one value; ``_ABSENT`` when live has none."""
    if type(want) is dict and type(have) is dict:
        return _reconcile_map(want, have, key in QUANTITY_PARENT_KEYS, path, ops)
    if type(want) is list and type(have) is list and len(want) == len(have):
        return [
            _reconcile(w, h, None, False, f"{path}/{index}", ops)
            for index, (w, h) in enumerate(zip(want, have, strict=True))
        ]
    if _value_equal(want, have, key, quantities):
        return want  # equal: show desired's spelling (500m, not 0.5)
    ops.append({"op": "add" if have is _ABSENT else "replace", "path": path, "value": _copy(want)})
    return _shape(have, want)


def _shape(live: Any, desired: Any) -> Any:
    """``live`` trimmed to the fields ``desired`` declares, for display."""
    if type(live) is dict and type(desired) is dict:
        return {key: _shape(live[key], want) for key, want in desired.items() if key in live}
    if type(live) is list and type(desired) is list and desired:
        last = len(desired) - 1
        return [_shape(item, desired[min(index, last)]) for index, item in enumerate(live)]
    return live


def _escape(key: object) -> str:
    """One JSON-pointer token (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return str(key).replace("~", "~0").replace("/", "~1")


def _copy(value: Any) -> Any:
    """A deep copy of a JSON-like value (patch values must not alias the inputs)."""
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


def _unified(key: str, live: dict[str, Any] | None, desired: dict[str, Any]) -> str:
    before = [] if live is None else _yaml(live).splitlines(keepends=True)
    after = _yaml(desired).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, f"live/{key}", f"desired/{key}"))


def _yaml(value: dict[str, Any]) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
