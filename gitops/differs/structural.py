"""The structural differ: desired compared with live, after normalization.

Rules (see :mod:`gitops.differs.normalize`): server-owned fields are ignored; mappings
compare key by key, lists of equal length element by element, lists of different length
are drift; a ``null`` field in desired declares nothing (templates leave ``annotations:``
empty), and ``{}``/``[]`` match an absent field (the API server omits them); quantities
compare by value at quantity positions; ``1 == 1.0`` but ``True != 1``; a Secret's
``stringData`` is compared as ``data``, and a Secret's or ConfigMap's ``null`` value
equals ``""``.

Which live fields desired must account for depends on the target: the
:class:`~gitops.model.DriftPolicy` each diff receives (the target declares it through
:meth:`~gitops.targets.base.Target.drift_policy`):

* ``SUBSET`` (default): desired is a subset of live: fields desired does not declare
  are not drift (server defaults, fields other controllers set);
* ``EXACT``, for targets that hold exactly what was applied plus server-owned
  metadata and status (the file tree, the in-memory target): any other live field is
  drift, and the patch removes it; lists always compare by position;
* ``MANAGED`` with ``field_manager="gitops"``, for server-side apply (Kubernetes): subset, plus the fields
  that manager's last apply owns (``metadata.managedFields``) and desired no longer
  declares, which its next apply removes (see :mod:`gitops.differs.managed`).

In ``SUBSET`` and ``MANAGED`` modes, ``policy.list_types`` says which lists merge by key
(:mod:`gitops.differs.lists`): their items pair by key, so an item only live has (a
sidecar, a variable ``kubectl set env`` added) is not drift unless the field manager
owns it, and order is not drift; sets compare as sets. ``policy.ignore`` rules
(:mod:`gitops.differs.ignore`) make fields never drift in any mode.

Two passes keep the hot path cheap: an "equal?" test that copies nothing and builds
nothing, then, only for a changed pair, a walk (:mod:`gitops.differs.walk`) that builds
the RFC 6902 patch and the two sides as shown in the unified diff. The same walk
explains what is not drift (:meth:`StructuralDiffer.explain`). This differ must never
mutate its inputs, and never show a Secret value: in ``text``, ``patch`` and
explanations Secret values are masked (see :mod:`gitops.masking`), so the patch of a
Secret is for display only — the engine applies desired, never the patch.
"""

from __future__ import annotations

import difflib
import marshal
from typing import Any, ClassVar, Final

import yaml

from gitops.differs.base import DEFAULT_POLICY, Differ
from gitops.differs.explain import Explanation, Notes
from gitops.differs.ignore import matching_rules, respect
from gitops.differs.lists import KEY_DEFAULTS, item_key, member
from gitops.differs.managed import Removal, applied_fields, removed_fields
from gitops.differs.normalize import (
    CONFIG_MAP_SECTIONS,
    IGNORED_FIELDS,
    QUANTITY_KEYS,
    QUANTITY_PARENT_KEYS,
    IgnoreRules,
    is_empty,
    leaf_equal,
    normalize_config_map,
    normalize_secret,
    quantity_equal,
    strip_ignored,
)
from gitops.differs.walk import ABSENT, Lists, Walker, nothing, pointer, removal_tree
from gitops.masking import mask_patch, mask_secret, mask_secret_pair
from gitops.model import Diff, DriftMode, DriftPolicy, Resource

__all__ = ["StructuralDiffer", "explain"]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The C dumper when available, without anchors: a diff must read as plain YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_ABSENT: Final[Any] = ABSENT
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
        from nothing to desired. Raises InputError for an ignore rule that cannot be
        evaluated (naming the rule's index in ``policy.ignore``).
        """
        secret = desired.key.kind == "Secret"  # masked whatever its group
        if live is None:
            shown = mask_secret(desired.manifest) if secret else desired.manifest
            return Diff(changed=True, text=_unified(str(desired.key), None, shown))
        want, have = _normalized(desired, live)
        lists = _lists(policy, desired)
        if policy.ignore:
            rules = matching_rules(policy, desired.key)
            if rules:
                want = respect(want, have, rules, lists)
        if want is have:
            return _UNCHANGED
        if policy.mode is DriftMode.EXACT:
            want, have = strip_ignored(want), strip_ignored(have)
            if want is have or _identical(want, have) or _exact_map_equal(want, have, False):
                return _UNCHANGED
            ops: list[dict[str, Any]] = []
            projected = Walker(ops).exact(want, have)
            return _result(str(desired.key), want, projected, ops, secret)
        manager = policy.field_manager if policy.mode is DriftMode.MANAGED else None
        owned = applied_fields(have, manager) if manager else None
        if _rules_equal(want, have, IGNORED_FIELDS, lists) and (
            owned is None or not removed_fields(owned, want, have, IGNORED_FIELDS, first=True)
        ):
            return _UNCHANGED
        removals = removed_fields(owned, want, have, IGNORED_FIELDS) if owned else []
        return _changed(str(desired.key), want, have, secret, removals, lists)

    def explain(
        self, desired: Resource, live: Resource | None, policy: DriftPolicy = DEFAULT_POLICY
    ) -> list[Explanation]:
        """Why each field that differs between ``desired`` and ``live`` is not drift.

        See :func:`explain`.
        """
        return explain(desired, live, policy)


def explain(
    desired: Resource, live: Resource | None, policy: DriftPolicy = DEFAULT_POLICY
) -> list[Explanation]:
    """For every compared field that differs yet is not reported as drift, why.

    One :class:`~gitops.differs.explain.Explanation` a field (a JSON pointer into live):
    server-owned, defaulted, owned by another manager (named), equal as quantities,
    null equals empty, keyed-list order, ignored by rule N. Fields equal as written,
    and fields that *are* drift, get none; nothing when ``live`` is None. Never shows
    a Secret's values. Raises InputError for an ignore rule that cannot be evaluated.
    """
    if live is None:
        return []
    secret = desired.key.kind == "Secret"
    manager = policy.field_manager if policy.mode is DriftMode.MANAGED else ""
    notes = Notes(live.manifest, manager=manager, secret=secret)
    want, have = _normalized(desired, live, notes)
    lists = _lists(policy, desired)
    if policy.ignore:
        rules = matching_rules(policy, desired.key)
        if rules:
            want = respect(want, have, rules, lists, notes)
    notes.server_owned(have)
    ops: list[dict[str, Any]] = []
    if policy.mode is DriftMode.EXACT:
        Walker(ops, notes=notes).exact(strip_ignored(want), strip_ignored(have))
        return notes.items
    owned = applied_fields(have, manager) if manager else None
    removals = removed_fields(owned, want, have, IGNORED_FIELDS) if owned else []
    walker = Walker(ops, lists=lists, removals=removal_tree(removals), notes=notes)
    walker.subset(want, have, IGNORED_FIELDS)
    return notes.items


def _normalized(
    desired: Resource, live: Resource, notes: Notes | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both manifests as the API server stores them (Secret ``stringData``, ``null`` values)."""
    want, have = desired.manifest, live.manifest
    if desired.key.group:
        return want, have
    kind = desired.key.kind
    if kind == "Secret":  # stringData is a core Secret's write-only field
        if notes is not None:
            _note_empty_values(notes, want, have, ("data", "stringData"))
        return normalize_secret(want), normalize_secret(have)
    if kind == "ConfigMap":
        if notes is not None:
            _note_empty_values(notes, want, have, CONFIG_MAP_SECTIONS)
        return normalize_config_map(want), normalize_config_map(have)
    return want, have


def _note_empty_values(
    notes: Notes, want: dict[str, Any], have: dict[str, Any], sections: tuple[str, ...]
) -> None:
    for section in sections:
        ours, theirs = want.get(section), have.get("data" if section == "stringData" else section)
        if type(ours) is not dict or type(theirs) is not dict:
            continue
        for name, value in ours.items():
            other = theirs.get(name, _ABSENT)
            if (value == "" and other is None) or (value is None and other == ""):
                notes.empty((section, name), value, other)


def _lists(policy: DriftPolicy, desired: Resource) -> Lists | None:
    """The list-type lookup of this kind (never in exact mode: lists stay positional)."""
    types = policy.list_types
    if types is None or policy.mode is DriftMode.EXACT:
        return None
    group, kind = desired.key.group, desired.key.kind

    def lookup(names: tuple[str, ...]) -> Any:
        return types.list_type(group, kind, names)

    return lookup


# -- pass 1: equal? ---------------------------------------------------------------------
# _value_equal, _map_equal and _list_equal implement one relation; _map_equal inlines
# _value_equal because it runs for every field of every manifest. ``lists`` (None: every
# list by position) is looked up by ``names``, the field names from the root, which are
# only built when ``lists`` is given.


def _rules_equal(
    desired: dict[str, Any],
    live: dict[str, Any],
    rules: IgnoreRules,
    lists: Lists | None,
    names: tuple[str, ...] = (),
) -> bool:
    """Subset equality of two mappings, skipping the fields ``rules`` ignores."""
    for key, want in desired.items():
        rule = rules.get(key, _ABSENT)
        if rule is None or want is None:
            continue
        have = live.get(key, _ABSENT)
        sub = names if lists is None else (*names, key)
        if rule is _ABSENT:
            equal = _value_equal(want, have, key, False, lists, sub)
        elif type(want) is dict and type(have) is dict:
            equal = _rules_equal(want, have, rule, lists, sub)
        else:
            equal = _value_equal(strip_ignored(want, rule), have, key, False, lists, sub)
        if not equal:
            return False
    return True


def _value_equal(
    want: Any, have: Any, key: object, quantities: bool, lists: Lists | None,
    names: tuple[str, ...],
) -> bool:
    """Subset equality of one desired value and its live counterpart (``_ABSENT`` if none)."""
    if want is have:
        return True
    kind = type(want)
    if kind is dict and type(have) is dict:
        return _map_equal(want, have, key in QUANTITY_PARENT_KEYS, lists, names)
    if kind is list and type(have) is list:
        return _list_equal(want, have, lists, names)
    if (
        kind is not dict
        and kind is not list
        and leaf_equal(want, have, quantities or key in QUANTITY_KEYS)
    ):
        return True
    return is_empty(want) and (have is _ABSENT or is_empty(have))


def _map_equal(
    desired: dict[str, Any], live: dict[str, Any], quantities: bool, lists: Lists | None,
    names: tuple[str, ...],
) -> bool:
    for key, want in desired.items():
        have = live.get(key, _ABSENT)
        kind = type(want)
        if kind is str:  # the most common leaf: test it first
            if want == have:
                continue
        elif kind is dict:
            if type(have) is dict:
                if _map_equal(want, have, key in QUANTITY_PARENT_KEYS, lists,
                              names if lists is None else (*names, key)):
                    continue
                return False
        elif kind is list:
            if type(have) is list:
                if _list_equal(want, have, lists, names if lists is None else (*names, key)):
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


def _list_equal(
    desired: list[Any], live: list[Any], lists: Lists | None, names: tuple[str, ...]
) -> bool:
    if lists is not None:
        found = lists(names)
        if found is not None:
            if found.type == "map" and all(type(item) is dict for item in desired):
                return _keyed_equal(desired, live, found.keys, lists, names)
            if found.type == "set":
                members = {member(item) for item in live}
                return all(member(item) in members for item in desired)
    if len(desired) != len(live):
        return False
    for want, have in zip(desired, live, strict=True):
        kind = type(want)
        if kind is str and want == have:
            continue
        if kind is dict and type(have) is dict:
            if not _map_equal(want, have, False, lists, names):
                return False
        elif not _value_equal(want, have, None, False, lists, names):
            return False
    return True


def _keyed_equal(
    desired: list[dict[str, Any]], live: list[Any], keys: tuple[str, ...], lists: Lists,
    names: tuple[str, ...],
) -> bool:
    """Every desired item has a live item with its key, and is a subset of it.

    Live keys are unique (the API server validates them), so when the items line up, as
    they usually do, each pair is compared in place without indexing live.
    """
    if len(desired) <= len(live):
        for want, have in zip(desired, live, strict=False):
            if type(have) is not dict or not _same_key(want, have, keys):
                break
            if not _map_equal(want, have, False, lists, names):
                return False
        else:
            return len(desired) == len(live) or not _duplicates_desired(desired, live, keys)
    index: dict[Any, dict[str, Any]] = {}
    twice: set[Any] = set()
    for item in live:
        if type(item) is dict:
            key = item_key(item, keys)
            if key in index:
                twice.add(key)
            else:
                index[key] = item
    if twice and any(item_key(want, keys) in twice for want in desired):
        return False  # a key desired declares is twice in live (see _duplicates_desired)
    for want in desired:
        have = index.get(item_key(want, keys))
        if have is None or not _map_equal(want, have, False, lists, names):
            return False
    return True


def _duplicates_desired(
    desired: list[dict[str, Any]], live: list[Any], keys: tuple[str, ...]
) -> bool:
    """Whether live holds a desired key twice (``env`` ``FOO`` set twice by a JSON patch):
    the container sees the last one, so the first matching is no proof of being in sync."""
    wanted = {item_key(item, keys) for item in desired}
    seen: set[Any] = set()
    for item in live:
        if type(item) is dict:
            key = item_key(item, keys)
            if key in wanted:
                if key in seen:
                    return True
                seen.add(key)
    return False


def _same_key(want: dict[str, Any], have: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether two items have the same key (:func:`~gitops.differs.lists.item_key`'s rules)."""
    for name in keys:
        mine, theirs = want.get(name), have.get(name)
        if mine is None:
            mine = KEY_DEFAULTS.get(name)
        if theirs is None:
            theirs = KEY_DEFAULTS.get(name)
        if mine != theirs or (type(mine) is bool) is not (type(theirs) is bool):
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


def _exact_equal(want: Any, have: Any, key: object, quantities: bool) -> bool:
    """Exact equality of one desired and one live value (``_ABSENT`` for a missing field).

    Mappings must have the same fields, where absent and :func:`~gitops.differs.walk
    .nothing` values are one; the leaf rules are :func:`_value_equal`'s.
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
    return nothing(want) and nothing(have)


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
        if not (nothing(want) and nothing(have)):
            return False
    return matched == len(live) or all(
        name in desired or nothing(item) for name, item in live.items()
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
    key: str,
    desired: dict[str, Any],
    live: dict[str, Any],
    secret: bool,
    removals: list[Removal],
    lists: Lists | None,
) -> Diff:
    ops: list[dict[str, Any]] = []
    # remove first, deepest and highest index first, so every path stays right as the
    # patch is applied; the walk then numbers list items as they are after the removals
    for tokens, _value in sorted(removals, key=_order, reverse=True):
        ops.append({"op": "remove", "path": pointer(tokens)})
    walker = Walker(ops, lists=lists, removals=removal_tree(removals))
    projected, shown = walker.subset(desired, live, IGNORED_FIELDS)
    return _result(key, shown, projected, ops, secret)


def _order(removal: Removal) -> tuple[tuple[int, int | str], ...]:
    """Sort key of a removal: tokens, list indices compared as numbers."""
    return tuple((0, t) if type(t) is int else (1, t) for t in removal[0])


def _result(
    key: str, shown: dict[str, Any], projected: dict[str, Any], ops: list[dict[str, Any]],
    secret: bool,
) -> Diff:
    patch: tuple[dict[str, Any], ...] = tuple(ops)
    if secret:
        shown, projected = mask_secret_pair(shown, projected)
        patch = mask_patch(patch)
    return Diff(changed=True, patch=patch, text=_unified(key, projected, shown))


def _unified(key: str, live: dict[str, Any] | None, desired: dict[str, Any]) -> str:
    before = [] if live is None else _yaml(live).splitlines(keepends=True)
    after = _yaml(desired).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, f"live/{key}", f"desired/{key}"))


def _yaml(value: dict[str, Any]) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
