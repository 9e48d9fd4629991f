"""Pass 2 of the structural differ: the patch, the two sides as shown, and why the rest is equal.

Runs for a changed pair only (and for :func:`~gitops.differs.structural.explain`), so it
favours clarity over speed. One walk of desired against live yields:

* the RFC 6902 operations that make live match desired (removals first, computed by
  :mod:`gitops.differs.managed` and passed in as a tree of live tokens);
* live as shown: projected onto the fields desired declares (subset) or whole (exact),
  plus what goes; keyed lists in live's order, without the items only others keep;
* desired as shown: keyed lists in live's order too (then the items to add), so an
  order change never shows as a change;
* optionally, :class:`~gitops.differs.explain.Notes` on every difference that is not
  drift (equal quantities, empty values, keyed-list order, fields desired leaves out).

Operation paths use the indices live will have after the removals; notes use live's
own indices. This module never mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from gitops.differs.lists import item_key, member
from gitops.differs.managed import Removal
from gitops.differs.normalize import (
    QUANTITY_KEYS,
    QUANTITY_PARENT_KEYS,
    IgnoreRules,
    is_empty,
    leaf_equal,
    strip_ignored,
)
from gitops.model import ListType

if TYPE_CHECKING:
    from gitops.differs.explain import Notes

__all__ = [
    "ABSENT",
    "WHOLE",
    "Lists",
    "RemovalTree",
    "Walker",
    "copy_json",
    "escape",
    "nothing",
    "pointer",
    "removal_tree",
]

#: Stands for a field a side does not have; never equal to any value.
ABSENT: Final[Any] = object()
#: Marks a node of a :data:`RemovalTree` that goes whole.
WHOLE: Final[Any] = object()

Tokens: TypeAlias = tuple[str | int, ...]
#: Live tokens -> subtree, or :data:`WHOLE` where the node goes whole.
RemovalTree: TypeAlias = dict[str | int, Any]
#: The list type at a path of field names (list indices not counted), or None.
Lists: TypeAlias = Callable[[tuple[str, ...]], ListType | None]


def removal_tree(removals: list[Removal]) -> RemovalTree:
    """The removals as a tree of live tokens (a node that goes whole ends in :data:`WHOLE`)."""
    tree: RemovalTree = {}
    for tokens, _value in removals:
        node = tree
        for token in tokens[:-1]:
            child = node.get(token)
            if child is WHOLE:
                break
            node = node.setdefault(token, {})
        else:
            node[tokens[-1]] = WHOLE
    return tree


class Walker:
    """One pass-2 walk; read :attr:`ops` after :meth:`subset` or :meth:`exact`."""

    def __init__(
        self,
        ops: list[dict[str, Any]],
        *,
        lists: Lists | None = None,
        removals: RemovalTree | None = None,
        notes: Notes | None = None,
    ) -> None:
        self.ops = ops
        self.lists = lists
        self.removals = removals or None
        self.notes = notes

    # -- subset (and managed) mode ---------------------------------------------------------

    def subset(
        self, desired: dict[str, Any], live: dict[str, Any], rules: IgnoreRules
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(live as shown, desired as shown)``, appending the ops; ``rules``: server-owned."""
        return self._map(desired, live, False, "", (), (), self.removals, rules)

    def _map(
        self,
        want: dict[str, Any],
        have: dict[str, Any],
        quantities: bool,
        at: str,
        loc: Tokens,
        names: tuple[str, ...],
        rm: RemovalTree | None,
        rules: IgnoreRules | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        projected: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for key, w in want.items():
            rule = rules.get(key, ABSENT) if rules else ABSENT
            if rule is None:
                continue  # server-owned: never compared
            h = have.get(key, ABSENT)
            r = rm.get(key) if rm else None
            if r is WHOLE and w is not None:
                # it goes (removals pair list items by key), yet the item this walk pairs
                # with it by position declares it: added back once the removals are done
                value = w if rule is ABSENT else strip_ignored(w, rule)
                projected[key], shown[key] = h, value
                if not is_empty(value):
                    self.ops.append({"op": "add", "path": f"{at}/{escape(key)}",
                                     "value": copy_json(value)})
                continue
            if w is None:  # declares nothing (a removal below shows what goes)
                shown[key] = w
                if r is not None:
                    projected[key] = restrict(h, r)
                else:
                    projected[key] = None
                    if h is not ABSENT and h is not None and self.notes is not None:
                        self.notes.live_only((*loc, key), h)
                continue
            sub = (*names, key)
            place, where = f"{at}/{escape(key)}", (*loc, key)
            if rule is not ABSENT and type(w) is dict and type(h) is dict:
                pv, sv = self._map(w, h, False, place, where, sub, r, rule)
            else:
                if rule is not ABSENT:
                    w = strip_ignored(w, rule)
                pv, sv = self._value(w, h, key, quantities, place, where, sub, r)
            if pv is not ABSENT:
                projected[key] = pv
            shown[key] = sv
        if rm is None and self.notes is None:
            return projected, shown
        reorder = False
        for key, h in have.items():
            if key in want:
                continue
            r = rm.get(key) if rm else None
            if r is not None:  # goes, whole or in part: shown on live's side
                projected[key] = h if r is WHOLE else restrict(h, r)
                reorder = True
            elif self.notes is not None:
                rule = rules.get(key, ABSENT) if rules else ABSENT
                if rule is ABSENT:
                    self.notes.live_only((*loc, key), h)
                elif rule is not None and not nothing(strip_ignored(h, rule)):
                    self.notes.live_only((*loc, key), strip_ignored(h, rule))
        if reorder:  # in live's order, as live holds them
            ordered = {key: projected[key] for key in have if key in projected}
            ordered.update((key, item) for key, item in projected.items() if key not in ordered)
            projected = ordered
        return projected, shown

    def _value(
        self,
        w: Any,
        h: Any,
        key: object,
        quantities: bool,
        at: str,
        loc: Tokens,
        names: tuple[str, ...],
        rm: RemovalTree | None,
    ) -> tuple[Any, Any]:
        """One declared value: ``(live as shown or ABSENT, desired as shown)``."""
        if type(w) is dict and type(h) is dict:
            return self._map(w, h, key in QUANTITY_PARENT_KEYS, at, loc, names, rm, None)
        if type(w) is list and type(h) is list:
            return self._list(w, h, at, loc, names, rm)
        if type(w) is not dict and type(w) is not list:
            quantity = quantities or key in QUANTITY_KEYS
            if leaf_equal(w, h, quantity):
                if self.notes is not None and w != h:
                    self.notes.quantity(loc, w, h)
                return w, w
        if is_empty(w) and (h is ABSENT or is_empty(h)):
            if self.notes is not None:
                self.notes.empty(loc, w, h)
            return w, w
        self.ops.append({"op": "add" if h is ABSENT else "replace", "path": at, "value": copy_json(w)})
        return shape(h, w), w

    def _list(
        self,
        w: list[Any],
        h: list[Any],
        at: str,
        loc: Tokens,
        names: tuple[str, ...],
        rm: RemovalTree | None,
    ) -> tuple[Any, Any]:
        found = self.lists(names) if self.lists is not None else None
        if found is not None and found.type == "map" and all(type(d) is dict for d in w):
            return self._keyed(w, h, found.keys, at, loc, names, rm)
        if found is not None and found.type == "set":
            return self._set(w, h, at, loc, rm)
        kept = [i for i in range(len(h)) if (rm.get(i) if rm else None) is not WHOLE]
        if len(kept) == len(w):
            projected: list[Any] = []
            shown: list[Any] = []
            j = 0
            for i, item in enumerate(h):
                r = rm.get(i) if rm else None
                if r is WHOLE:
                    projected.append(item)
                    continue
                pv, sv = self._value(w[j], item, None, False, f"{at}/{j}", (*loc, i), names, r)
                projected.append(pv)
                shown.append(sv)
                j += 1
            return projected, shown
        if is_empty(w) and not kept:
            return list(h), w
        self.ops.append({"op": "replace", "path": at, "value": copy_json(w)})
        last = len(w) - 1
        projected = []
        j = 0
        for i, item in enumerate(h):
            if rm and rm.get(i) is WHOLE:
                projected.append(item)
            else:
                projected.append(shape(item, w[min(j, last)]) if w else item)
                j += 1
        return projected, w

    def _keyed(
        self,
        w: list[dict[str, Any]],
        h: list[Any],
        keys: tuple[str, ...],
        at: str,
        loc: Tokens,
        names: tuple[str, ...],
        rm: RemovalTree | None,
    ) -> tuple[list[Any], list[Any]]:
        """A list keyed by ``keys``: items pair by key, live's order and others' items stay."""
        index: dict[Any, int] = {}
        duplicates: set[int] = set()  # a key seen before: removed, the first one counts
        for i, item in enumerate(h):
            if type(item) is dict and not (rm and rm.get(i) is WHOLE):
                key = item_key(item, keys)
                if key in index:
                    duplicates.add(i)
                else:
                    index[key] = i
        pairs: dict[int, list[dict[str, Any]]] = {}
        added: list[dict[str, Any]] = []
        order: list[int] = []
        for d in w:
            i = index.get(item_key(d, keys), -1)
            if i < 0:
                added.append(d)
            else:
                pairs.setdefault(i, []).append(d)
                order.append(i)
        projected: list[Any] = []
        shown: list[Any] = []
        position = 0  # the item's index once the removals are done
        for i, item in enumerate(h):
            r = rm.get(i) if rm else None
            if r is WHOLE:
                projected.append(item)
                continue
            if i in duplicates and index[item_key(item, keys)] in pairs:
                self.ops.append({"op": "remove", "path": f"{at}/{position}"})
                projected.append(item)
                continue
            matched = pairs.get(i)
            if matched:
                for d in matched:
                    pv, sv = self._value(d, item, None, False, f"{at}/{position}", (*loc, i),
                                         names, r)
                    if d is matched[0]:
                        projected.append(pv)
                        shown.append(sv)
            elif r is not None:
                projected.append(restrict(item, r))
            elif self.notes is not None:
                self.notes.live_only((*loc, i), item)
            position += 1
        for d in added:
            self.ops.append({"op": "add", "path": f"{at}/-", "value": copy_json(d)})
            shown.append(d)
        if self.notes is not None and order != sorted(order):
            self.notes.order(loc, [item_label(h[i], keys) for i in order])
        return projected, shown

    def _set(
        self, w: list[Any], h: list[Any], at: str, loc: Tokens, rm: RemovalTree | None
    ) -> tuple[list[Any], list[Any]]:
        """A set: members compare by value, live's order and others' members stay."""
        wanted = {member(d) for d in w}
        present: dict[Any, int] = {}
        projected: list[Any] = []
        shown: list[Any] = []
        for i, item in enumerate(h):
            r = rm.get(i) if rm else None
            if r is not None:
                projected.append(item)  # goes
                continue
            m = member(item)
            present.setdefault(m, i)
            if m in wanted:
                projected.append(item)
                shown.append(item)
            elif self.notes is not None:
                self.notes.live_only((*loc, i), item)
        order = [present[m] for m in (member(d) for d in w) if m in present]
        for d in w:
            if member(d) not in present:
                self.ops.append({"op": "add", "path": f"{at}/-", "value": copy_json(d)})
                shown.append(d)
        if self.notes is not None and order != sorted(order):
            self.notes.order(loc, [str(h[i]) for i in order])
        return projected, shown

    # -- exact mode -------------------------------------------------------------------------

    def exact(self, desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        """Live as shown (both sides already stripped of server-owned fields)."""
        return self._exact_map(desired, live, False, "", ())

    def _exact_map(
        self, want: dict[str, Any], have: dict[str, Any], quantities: bool, at: str, loc: Tokens
    ) -> dict[str, Any]:
        """Every live field, in desired's order with live-only fields where live has them."""
        projected: dict[str, Any] = {}
        for name in merged_order(want, have):
            w, h = want.get(name, ABSENT), have.get(name, ABSENT)
            place, where = f"{at}/{escape(name)}", (*loc, name)
            if nothing(w) and nothing(h):
                if w is not ABSENT and h is not ABSENT:
                    projected[name] = w
                if self.notes is not None and w != h and not (_bare(w) and _bare(h)):
                    self.notes.empty(where, w, h)
                continue
            if nothing(w):  # goes: null or absent in desired; {} or [] replaces it
                if w is ABSENT or w is None:
                    self.ops.append({"op": "remove", "path": place})
                else:
                    self.ops.append({"op": "replace", "path": place, "value": copy_json(w)})
                projected[name] = h
                continue
            value = self._exact_value(w, h, name, quantities, place, where)
            if value is not ABSENT:
                projected[name] = value
        return projected

    def _exact_value(
        self, w: Any, h: Any, key: object, quantities: bool, at: str, loc: Tokens
    ) -> Any:
        if type(w) is dict and type(h) is dict:
            return self._exact_map(w, h, key in QUANTITY_PARENT_KEYS, at, loc)
        if type(w) is list and type(h) is list and len(w) == len(h):
            return [
                self._exact_value(x, y, None, False, f"{at}/{i}", (*loc, i))
                for i, (x, y) in enumerate(zip(w, h, strict=True))
            ]
        if (
            h is not ABSENT
            and type(w) not in (dict, list)
            and type(h) not in (dict, list)
            and leaf_equal(w, h, quantities or key in QUANTITY_KEYS)
        ):
            if self.notes is not None and w != h:
                self.notes.quantity(loc, w, h)
            return w
        if nothing(w) and nothing(h):
            return w
        self.ops.append({"op": "add" if h is ABSENT else "replace", "path": at, "value": copy_json(w)})
        return h


# -- helpers ------------------------------------------------------------------------------


def item_label(item: Any, keys: tuple[str, ...]) -> str:
    """``name=web`` or ``containerPort=80,protocol=TCP``: a keyed item as a person names it."""
    if type(item) is not dict:
        return str(item)
    key = item_key(item, keys)
    values = key if len(keys) > 1 else (key,)
    return ",".join(f"{name}={value}" for name, value in zip(keys, values, strict=True))


def _bare(value: Any) -> bool:
    return value is ABSENT or value is None


def nothing(value: Any) -> bool:
    """Absent, ``null``, ``[]``, or a mapping of nothing (``{}``, ``{a: null}``): in exact
    mode these are one value, as the API server drops nulls and empty fields."""
    if value is ABSENT or value is None:
        return True
    kind = type(value)
    if kind is dict:
        return all(nothing(item) for item in value.values())
    return kind is list and not value


def restrict(value: Any, rm: Any) -> Any:
    """The parts of live ``value`` that go (``rm``: a removal subtree), for display."""
    if rm is WHOLE:
        return value
    if type(value) is dict:
        return {key: restrict(item, rm[key]) for key, item in value.items() if key in rm}
    if type(value) is list:
        return [restrict(value[i], sub) for i, sub in sorted(rm.items()) if i < len(value)]
    return value


def shape(live: Any, desired: Any) -> Any:
    """``live`` trimmed to the fields ``desired`` declares, for display."""
    if type(live) is dict and type(desired) is dict:
        return {key: shape(live[key], want) for key, want in desired.items() if key in live}
    if type(live) is list and type(desired) is list and desired:
        last = len(desired) - 1
        return [shape(item, desired[min(index, last)]) for index, item in enumerate(live)]
    return live


def merged_order(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
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


def escape(key: object) -> str:
    """One JSON-pointer token (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return str(key).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Tokens) -> str:
    """The JSON pointer of ``tokens`` (``""`` for the root)."""
    return "".join(f"/{escape(token)}" for token in tokens)


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value (patch values must not alias the inputs)."""
    if type(value) is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [copy_json(item) for item in value]
    return value
