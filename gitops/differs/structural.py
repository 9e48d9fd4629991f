"""The structural differ: desired compared with live, after normalization.

Rules (see :mod:`gitops.differs.normalize`): server-owned fields are ignored; mappings
compare key by key, lists of equal length element by element, lists of different length
are drift; a ``null`` field in desired declares nothing (templates leave ``annotations:``
empty), and ``{}``/``[]`` match an absent field (the API server omits them); quantities
compare by value at quantity positions; ``1 == 1.0`` but ``True != 1``; a Secret's
``stringData`` is compared as ``data``.

Which live fields desired must account for depends on the target: the
:class:`~gitops.model.DriftPolicy` each diff receives (the target declares it through
:meth:`~gitops.targets.base.Target.drift_policy`):

* ``SUBSET`` (default): desired is a subset of live: fields desired does not declare
  are not drift (server defaults, fields other controllers set);
* ``EXACT``, for targets that hold exactly what was applied plus server-owned
  metadata and status (the file tree, the in-memory target): any other live field is
  drift, and the patch removes it;
* ``MANAGED`` with ``field_manager="gitops"``, for server-side apply (Kubernetes): subset, plus the fields
  that manager's last apply owns (``metadata.managedFields``) and desired no longer
  declares, which its next apply removes (see :mod:`gitops.differs.managed`).

Two passes keep the hot path cheap: an "equal?" test that copies nothing and builds
nothing, then, only for a changed pair, a walk that builds the RFC 6902 patch and the
live object as shown in the unified diff (projected onto desired's fields in subset
mode, plus the fields that go). This differ must never mutate its inputs, and never show
a Secret value: in ``text`` and in ``patch`` Secret values are masked (see
:mod:`gitops.masking`), so the patch of a Secret is for display only — the engine
applies desired, never the patch.
"""

from __future__ import annotations

import difflib
import marshal
from itertools import pairwise
from typing import Any, ClassVar, Final

import yaml

from gitops.differs.base import DEFAULT_POLICY, Differ
from gitops.differs.managed import Removal, applied_fields, removed_fields
from gitops.differs.normalize import (
    IGNORED_FIELDS,
    QUANTITY_KEYS,
    QUANTITY_PARENT_KEYS,
    IgnoreRules,
    is_empty,
    leaf_equal,
    normalize_secret,
    quantity_equal,
    strip_ignored,
)
from gitops.masking import mask_patch, mask_secret, mask_secret_pair
from gitops.model import Diff, DriftMode, DriftPolicy, Resource

__all__ = ["StructuralDiffer"]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The C dumper when available, without anchors: a diff must read as plain YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# Stands for a field live does not have; never equal to any value.
_ABSENT: Final[Any] = object()
_UNCHANGED: Final = Diff(changed=False)


class StructuralDiffer(Differ):
    """Comparison of desired against live, with Kubernetes normalization.

    Stateless: what counts as drift comes with each call, in the
    :class:`~gitops.model.DriftPolicy`.
    """

    name: ClassVar[str] = "structural"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def diff(
        self, desired: Resource, live: Resource | None, policy: DriftPolicy = DEFAULT_POLICY
    ) -> Diff:
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
        if want is have:
            return _UNCHANGED
        if policy.mode is DriftMode.EXACT:
            want, have = strip_ignored(want), strip_ignored(have)
            if want is have or _identical(want, have) or _exact_map_equal(want, have, False):
                return _UNCHANGED
            return _changed_exact(str(desired.key), want, have, secret)
        manager = policy.field_manager if policy.mode is DriftMode.MANAGED else None
        owned = applied_fields(have, manager) if manager else None
        if _rules_equal(want, have, IGNORED_FIELDS) and (
            owned is None or not removed_fields(owned, want, have, IGNORED_FIELDS, first=True)
        ):
            return _UNCHANGED
        removals = removed_fields(owned, want, have, IGNORED_FIELDS) if owned else []
        return _changed(str(desired.key), want, have, secret, removals)


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
        if (quantities or key in QUANTITY_KEYS) and quantity_equal(want, have):
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


# -- exact mode: pass 1 ---------------------------------------------------------------


def _identical(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    """Whether two stripped manifests are the same tree, types and key order included.

    A sufficient test for exact equality, in C: ``marshal`` (format 0: no references, no
    interning marks) writes ``True`` and ``1``, ``1`` and ``1.0`` differently, so equal
    bytes mean equal trees. Anything it cannot write (a YAML timestamp) says "not proven".
    """
    try:
        return marshal.dumps(desired, 0) == marshal.dumps(live, 0)
    except ValueError:
        return False


def _nothing(value: Any) -> bool:
    """Absent, ``null``, ``[]``, or a mapping of nothing (``{}``, ``{a: null}``): in exact
    mode these are one value, as the API server drops nulls and empty fields."""
    if value is _ABSENT or value is None:
        return True
    kind = type(value)
    if kind is dict:
        return all(_nothing(item) for item in value.values())
    return kind is list and not value


def _exact_equal(want: Any, have: Any, key: object, quantities: bool) -> bool:
    """Exact equality of one desired and one live value (``_ABSENT`` for a missing field).

    Mappings must have the same fields, where absent and :func:`_nothing` values are
    one; the leaf rules are :func:`_value_equal`'s.
    """
    if want is have:
        return True
    kind = type(want)
    if kind is dict and type(have) is dict:
        return _exact_map_equal(want, have, key in QUANTITY_PARENT_KEYS)
    if kind is list and type(have) is list:
        return len(want) == len(have) and _exact_list_equal(want, have)
    if (
        want is not _ABSENT
        and have is not _ABSENT
        and kind is not dict
        and kind is not list
        and type(have) is not dict
        and type(have) is not list
        and leaf_equal(want, have, quantities or key in QUANTITY_KEYS)
    ):
        return True
    return _nothing(want) and _nothing(have)


def _exact_map_equal(desired: dict[str, Any], live: dict[str, Any], quantities: bool) -> bool:
    matched = 0  # desired fields live has: fewer than live's means live has others
    for key, want in desired.items():
        have = live.get(key, _ABSENT)
        if have is not _ABSENT:
            matched += 1
        kind = type(want)
        if kind is str:  # the most common leaf: test it first
            if want == have:
                continue
        elif kind is dict:
            if type(have) is dict:
                if _exact_map_equal(want, have, key in QUANTITY_PARENT_KEYS):
                    continue
                return False
        elif kind is list:
            if type(have) is list:
                if len(want) == len(have) and _exact_list_equal(want, have):
                    continue
                return False
        elif want is not None and want == have:
            if (kind is bool) is (type(have) is bool):
                continue
            return False
        if (
            (quantities or key in QUANTITY_KEYS)
            and have is not _ABSENT
            and quantity_equal(want, have)
        ):
            continue
        if not (_nothing(want) and _nothing(have)):
            return False
    return matched == len(live) or all(
        name in desired or _nothing(item) for name, item in live.items()
    )


def _exact_list_equal(desired: list[Any], live: list[Any]) -> bool:
    for want, have in zip(desired, live, strict=True):
        kind = type(want)
        if kind is str and want == have:
            continue
        if kind is dict and type(have) is dict:
            if not _exact_map_equal(want, have, False):
                return False
        elif not _exact_equal(want, have, None, False):
            return False
    return True


# -- pass 2: patch and projection, for changed pairs only -------------------------------


def _changed(
    key: str, desired: dict[str, Any], live: dict[str, Any], secret: bool, removals: list[Removal]
) -> Diff:
    ops: list[dict[str, Any]] = []
    kept = live
    if removals:  # remove first, then patch what is left: list indices stay right
        removals.sort(key=_order, reverse=True)
        kept = _copy(live)
        for tokens, _value in removals:
            _delete(kept, tokens)
            ops.append({"op": "remove", "path": _pointer(tokens)})
    projected = _reconcile_map(desired, kept, False, "", ops, IGNORED_FIELDS)
    for tokens, value in reversed(removals):  # ascending: put back what goes, for display
        _put_back(projected, live, tokens, value)
    return _result(key, strip_ignored(desired), projected, ops, secret)


def _result(
    key: str, shown: dict[str, Any], projected: dict[str, Any], ops: list[dict[str, Any]],
    secret: bool,
) -> Diff:
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
            value = _value(want, have, key, quantities, at, ops, exact=False)
        if value is not _ABSENT:
            projected[key] = value
    return projected


def _value(
    want: Any, have: Any, key: object, quantities: bool, path: str, ops: list[dict[str, Any]],
    *, exact: bool,
) -> Any:
    """One declared value: append the ops that make ``have`` match ``want``; return it as shown.

    ``_ABSENT`` when live has none. Maps recurse into :func:`_exact_map` (``exact``) or
    :func:`_reconcile_map` (subset); equal values are shown in desired's spelling
    (``500m``, not ``0.5``).
    """
    if type(want) is dict and type(have) is dict:
        in_quantities = key in QUANTITY_PARENT_KEYS
        if exact:
            return _exact_map(want, have, in_quantities, path, ops)
        return _reconcile_map(want, have, in_quantities, path, ops)
    if type(want) is list and type(have) is list and len(want) == len(have):
        return [
            _value(w, h, None, False, f"{path}/{index}", ops, exact=exact)
            for index, (w, h) in enumerate(zip(want, have, strict=True))
        ]
    equal = _exact_equal if exact else _value_equal
    if equal(want, have, key, quantities):
        return want
    ops.append({"op": "add" if have is _ABSENT else "replace", "path": path, "value": _copy(want)})
    return have if exact else _shape(have, want)


def _changed_exact(key: str, desired: dict[str, Any], live: dict[str, Any], secret: bool) -> Diff:
    """The patch and text of a changed pair in exact mode (both already stripped)."""
    ops: list[dict[str, Any]] = []
    projected = _exact_map(desired, live, False, "", ops)
    return _result(key, desired, projected, ops, secret)


def _exact_map(
    desired: dict[str, Any], live: dict[str, Any], quantities: bool, path: str,
    ops: list[dict[str, Any]],
) -> dict[str, Any]:
    """Append the ops that make ``live`` equal ``desired``; return ``live`` as shown.

    Shown: every live field, in desired's order with live-only fields where live has
    them, and equal values in desired's spelling (``500m``, not ``0.5``).
    """
    projected: dict[str, Any] = {}
    for name in _merged_order(desired, live):
        want, have = desired.get(name, _ABSENT), live.get(name, _ABSENT)
        at = f"{path}/{_escape(name)}"
        if _nothing(want) and _nothing(have):
            if want is not _ABSENT and have is not _ABSENT:
                projected[name] = want
            continue
        if _nothing(want):  # goes: null or absent in desired; {} or [] replaces it
            if want is _ABSENT or want is None:
                ops.append({"op": "remove", "path": at})
            else:
                ops.append({"op": "replace", "path": at, "value": _copy(want)})
            projected[name] = have
            continue
        value = _value(want, have, name, quantities, at, ops, exact=True)
        if value is not _ABSENT:
            projected[name] = value
    return projected


def _merged_order(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Desired's keys in order, with each live-only key after the live key it follows."""
    if desired.keys() == live.keys():
        return list(desired)
    order: list[str] = []
    pending = [name for name in live if name not in desired]
    position = {name: index for index, name in enumerate(live)}
    for name in desired:
        where = position.get(name)
        while pending and where is not None and position[pending[0]] < where:
            order.append(pending.pop(0))
        order.append(name)
    return order + pending


# -- removals (field-manager mode) ------------------------------------------------------


def _order(removal: Removal) -> tuple[tuple[int, int | str], ...]:
    """Sort key of a removal: tokens, list indices compared as numbers."""
    return tuple((0, t) if type(t) is int else (1, t) for t in removal[0])


def _pointer(tokens: tuple[str | int, ...]) -> str:
    return "".join(f"/{_escape(token)}" for token in tokens)


def _delete(tree: Any, tokens: tuple[str | int, ...]) -> None:
    """Delete the value at ``tokens`` from ``tree`` (a private deep copy)."""
    for token in tokens[:-1]:
        tree = tree[token]
    del tree[tokens[-1]]


def _put_back(
    projected: dict[str, Any], live: dict[str, Any], tokens: tuple[str | int, ...], value: Any
) -> None:
    """Show a removed ``live`` value in ``projected`` at ``tokens``, copying what it changes.

    Removals are put back in ascending order, so list indices are live's. A container
    desired dropped whole is created; inside a list, one of another type is left alone.
    """
    node: Any = projected
    for token, below in pairwise(tokens):
        child = _fresh(node[token] if _holds(node, token) else None, type(below) is int)
        if type(node) is dict:
            node[token] = child if child is not None else ([] if type(below) is int else {})
        elif child is not None:
            node[token] = child
        else:
            return
        node = node[token]
    last = tokens[-1]
    if type(node) is dict and type(last) is str:
        node[last] = value
        order = _at(live, tokens[:-1])  # live's order, as live holds them
        if type(order) is dict:
            shown = {name: node[name] for name in order if name in node}
            shown.update((name, item) for name, item in node.items() if name not in shown)
            node.clear()
            node.update(shown)
    elif type(node) is list and type(last) is int:
        node.insert(last, value)


def _at(tree: Any, tokens: tuple[str | int, ...]) -> Any:
    for token in tokens:
        if not _holds(tree, token):
            return _ABSENT
        tree = tree[token]
    return tree


def _holds(node: Any, token: str | int) -> bool:
    if type(node) is dict:
        return token in node
    return type(node) is list and type(token) is int and token < len(node)


def _fresh(value: Any, is_list: bool) -> Any:
    """A shallow copy of ``value`` if it is the container expected, else None."""
    if is_list:
        return list(value) if type(value) is list else None
    return dict(value) if type(value) is dict else None


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
