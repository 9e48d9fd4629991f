"""The fields a server-side apply field manager owns, and those desired no longer declares.

A Kubernetes object records in ``metadata.managedFields`` which manager set which field.
The entry of a manager's ``Apply`` operation lists exactly the fields it applied last
(``fieldsV1``): a field it lists that is present live but absent from desired is one the
next apply removes, so it is drift. A field only other managers own, or nobody owns (a
server default), is not.

``fieldsV1`` is a nested mapping whose keys are path elements:

``f:<name>``
    a field of a map;
``k:<json>``
    an item of an associative list, by its key fields (``k:{"name":"app"}``);
``v:<json>``
    a member of a set (a list of scalars);
``i:<index>``
    an item of a list, by position;
``.``
    the node itself, next to the children it also owns (a list item the manager
    added, say).

Items are matched by their key fields; a key field desired leaves out is not compared,
except ``protocol``, which the server defaults to ``TCP`` before keying ports (an item
that declares the whole key wins over one that leaves a key field out). Inside a
value the manager owns whole (an atomic list or struct: a leaf of ``fieldsV1``), only
the structural differ's subset rule applies: the server may default fields there.
For explanations and ignore rules, :func:`field_owners` names the managers of a live
node and :func:`owned_paths` resolves a manager's ``fieldsV1`` against any manifest
(desired or live), list items found by key. Malformed entries are ignored, never an
error; nothing here mutates its input.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, TypeAlias

from gitops.differs.normalize import IgnoreRules

__all__ = [
    "Removal",
    "applied_fields",
    "field_owners",
    "manager_fields",
    "owned_paths",
    "removed_fields",
]

#: JSON-pointer tokens of a live field (list indices as ``int``) and its live value.
Removal: TypeAlias = tuple[tuple[str | int, ...], Any]

_ABSENT: Final[Any] = object()
_KEEP: Final[Any] = object()
_BAD: Final[Any] = object()


def applied_fields(live: dict[str, Any], manager: str) -> dict[str, Any] | None:
    """The ``fieldsV1`` tree of ``manager``'s ``Apply`` entry in ``live``; None if it has none.

    Only the entry of the main resource (no ``subresource``) counts, and only when it was
    recorded at the apiVersion ``live`` is read at (paths may differ between versions;
    a ``live`` without one takes the entry as it is).
    """
    metadata = live.get("metadata")
    entries = metadata.get("managedFields") if type(metadata) is dict else None
    if type(entries) is not list:
        return None
    api_version = live.get("apiVersion")
    for entry in entries:
        if (
            type(entry) is dict
            and entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
            and entry.get("fieldsType", "FieldsV1") == "FieldsV1"
            and (api_version is None or entry.get("apiVersion", api_version) == api_version)
        ):
            fields = entry.get("fieldsV1")
            return fields if type(fields) is dict else None
    return None


def removed_fields(
    owned: dict[str, Any],
    desired: Any,
    live: Any,
    rules: IgnoreRules | None = None,
    *,
    first: bool = False,
) -> list[Removal]:
    """The fields in ``owned`` that ``live`` holds and ``desired`` does not declare.

    ``rules`` (see :data:`~gitops.differs.normalize.IGNORED_FIELDS`) names fields never
    reported. A ``null`` in desired declares the field absent (server-side apply drops
    it), and a live ``null``, ``{}`` or ``[]`` is nothing to remove. Each removal is the
    topmost owned node that goes: a list item the manager added whole, or one field.
    ``first`` stops at the first one found (for an "any?" test).
    """
    out: list[Removal] = []
    _walk(owned, desired, live, rules, (), out, first)
    return out


def _walk(
    tree: dict[str, Any],
    want: Any,
    have: Any,
    rules: IgnoreRules | None,
    at: tuple[str | int, ...],
    out: list[Removal],
    first: bool,
) -> bool:
    """Append the removals below one node; True when ``first`` and one was found.

    On the hot path of every Kubernetes plan (an object in sync walks its whole tree):
    ``f:`` elements, the common case, are handled first and inline.
    """
    fields = type(have) is dict
    mapping = type(want) is dict
    for element, child in tree.items():
        token: str | int
        inner: IgnoreRules | None = None
        if fields and element[:1] == "f":
            token = element[2:]
            found = have.get(token, _ABSENT)
            if found is _ABSENT or found is None:
                continue
            wanted = want.get(token, _ABSENT) if mapping else _ABSENT
            if not child and wanted is not _ABSENT and wanted is not None:
                continue  # the common case: a declared leaf (the subset rule compares it)
            if rules is not None:
                rule = rules.get(token, _KEEP)
                if rule is None:
                    continue  # server-owned: never drift
                inner = None if rule is _KEEP else rule
        elif type(have) is list and type(element) is str:
            item = _item(element, want, have)
            if item is None:
                continue
            token, found, wanted = item
            if element[0] == "v":
                child = {}  # a set member is a leaf, whatever it says
        else:
            continue  # "." (the node itself), an element this version does not know
        nested = type(child) is dict and len(child) > ("." in child)
        if wanted is not _ABSENT and wanted is not None:
            if nested and _walk(child, wanted, found, inner, (*at, token), out, first):
                return True
            continue  # declared, and owned whole: the subset rule compares it
        if type(found) in (dict, list) and not found:
            continue  # nothing to remove
        if nested and "." not in child:  # only the fields it owns inside go
            if _walk(child, _ABSENT, found, inner, (*at, token), out, first):
                return True
            continue
        out.append(((*at, token), found))  # the manager owns the node: it goes whole
        if first:
            return True
    return False


def _item(element: str, want: Any, have: list[Any]) -> tuple[int, Any, Any] | None:
    """``(live index, live item, desired item or _ABSENT)`` of a ``k:``, ``v:`` or ``i:``
    element, or None when live has no such item."""
    tag, text = element[:2], element[2:]
    if tag == "k:":
        key = _json(text)
        if type(key) is not dict or not key:
            return None
        index = next((n for n, item in enumerate(have) if _keyed(item, key)), -1)
        if index < 0:
            return None
        return index, have[index], _wanted(want, key) if type(want) is list else _ABSENT
    if tag == "v:":
        value = _json(text)
        if value is _BAD:
            return None
        index = next((n for n, item in enumerate(have) if _same(item, value)), -1)
        if index < 0:
            return None
        present = type(want) is list and any(_same(item, value) for item in want)
        return index, have[index], have[index] if present else _ABSENT
    if tag == "i:":
        try:
            index = int(text)
        except ValueError:
            return None
        if not 0 <= index < len(have):
            return None
        wanted = want[index] if type(want) is list and index < len(want) else _ABSENT
        return index, have[index], wanted
    return None


def _wanted(want: list[Any], key: dict[str, Any]) -> Any:
    """The desired item with ``key``: one that declares every key field, else the first
    that leaves some out (``_ABSENT`` if none). An item that leaves a key field out
    matches any value of it, so it must never hide the item that declares the key."""
    fallback = _ABSENT
    for item in want:
        if _keyed(item, key):
            if all(name in item or name == "protocol" for name in key):
                return item
            if fallback is _ABSENT:
                fallback = item
    return fallback


@functools.lru_cache(maxsize=4096)
def _json(text: str) -> Any:
    """The JSON value of a key; the same few keys recur in every object (never mutated)."""
    try:
        return json.loads(text)
    except ValueError:
        return _BAD


def _keyed(item: Any, key: dict[str, Any]) -> bool:
    """Whether list item ``item`` has the key fields ``key`` (see the module docstring)."""
    if type(item) is not dict:
        return False
    for name, value in key.items():
        have = item.get(name, _ABSENT)
        if have is _ABSENT:
            if name == "protocol":
                have = "TCP"
            else:
                continue
        if not _same(have, value):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """``a == b`` for JSON values, where ``True`` is not ``1``."""
    return bool(a == b) and (type(a) is bool) is (type(b) is bool)


def _entries(live: dict[str, Any]) -> list[dict[str, Any]]:
    metadata = live.get("metadata")
    entries = metadata.get("managedFields") if type(metadata) is dict else None
    return [e for e in entries if type(e) is dict] if type(entries) is list else []


def manager_fields(live: dict[str, Any], managers: frozenset[str]) -> list[dict[str, Any]]:
    """The ``fieldsV1`` trees of every entry of ``managers`` in ``live`` (any operation,
    subresources included: an autoscaler sets ``replicas`` through ``scale``)."""
    return [
        entry["fieldsV1"]
        for entry in _entries(live)
        if entry.get("manager") in managers and type(entry.get("fieldsV1")) is dict
    ]


def field_owners(live: dict[str, Any], tokens: tuple[str | int, ...]) -> list[str]:
    """Who owns the live node at ``tokens`` (JSON-pointer tokens, list items by index).

    Each manager whose entry holds the node, a field inside it, or a value it sits in,
    as ``manager (Operation)`` (``istio (Update)``, ``gitops (Apply)``), in the order of
    ``managedFields``, each once.
    """
    owners: list[str] = []
    for entry in _entries(live):
        fields = entry.get("fieldsV1")
        if type(fields) is dict and _holds(fields, live, tokens):
            name = f"{entry.get('manager')} ({entry.get('operation')})"
            if name not in owners:
                owners.append(name)
    return owners


def _holds(tree: dict[str, Any], value: Any, tokens: tuple[str | int, ...]) -> bool:
    node: Any = tree
    for token in tokens:
        if type(node) is not dict:
            return False
        if not node or (len(node) == 1 and "." in node):
            return True  # owned whole above the node
        if type(token) is str and type(value) is dict:
            child = node.get(f"f:{token}")
            value = value.get(token)
        elif type(token) is int and type(value) is list and 0 <= token < len(value):
            child = next(
                (sub for element, sub in node.items()
                 if element[:2] in ("k:", "v:", "i:") and _index(element, value) == token),
                None,
            )
            value = value[token]
        else:
            return False
        if child is None:
            return False
        node = child
    return True


def owned_paths(fields: dict[str, Any], manifest: Any) -> list[tuple[str | int, ...]]:
    """The nodes of ``manifest`` that a ``fieldsV1`` tree owns, as JSON-pointer tokens.

    A leaf, or a node marked ``.`` (a list item added whole), is one path; a node with
    only children yields theirs. Items are found in ``manifest`` by key or value, so the
    same tree resolves against desired and live alike; what ``manifest`` lacks is skipped.
    """
    out: list[tuple[str | int, ...]] = []
    _owned(fields, manifest, (), out)
    return out


def _owned(tree: dict[str, Any], value: Any, at: tuple[str | int, ...], out: list[Any]) -> None:
    for element, child in tree.items():
        token: str | int
        if element[:2] == "f:" and type(value) is dict:
            token = element[2:]
            if token not in value:
                continue
            found = value[token]
        elif element[:2] in ("k:", "v:", "i:") and type(value) is list:
            index = _index(element, value)
            if index is None:
                continue
            token, found = index, value[index]
        else:
            continue
        if type(child) is not dict or not child or "." in child or element[:2] == "v:":
            out.append((*at, token))
        else:
            _owned(child, found, (*at, token), out)


def _index(element: str, items: list[Any]) -> int | None:
    found = _item(element, _ABSENT, items)
    return None if found is None else found[0]
