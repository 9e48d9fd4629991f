"""Server-side apply and ``metadata.managedFields``, approximating structured-merge-diff.

A field set is a set of paths; a path is a tuple of fieldsV1 elements: ``f:name`` (map
field), ``k:{"name":"c"}`` (associative list item), ``v:"x"`` (set member), ``i:0``
(index). Lists are associative when the emulator knows their merge key (see
:mod:`gitops.testing.kube.patch`; container and service ports key on port and protocol),
sets for ``finalizers``, and atomic otherwise. Maps are always granular.

- :func:`apply` merges an applied configuration into the live object for one manager:
  conflicts (409) where another manager owns a field the configuration sets to a different
  value, unless ``force``; fields the manager applied before and no longer applies are
  removed unless someone else owns them.
- :func:`track_update` records an ``Update`` operation (POST, PUT, non-apply PATCH): the
  manager takes the fields it changed from everyone else.

Known differences from the real server: no schema (so no defaulting-aware keys, and custom
resources' lists are atomic unless the CRD schema marks them ``x-kubernetes-list-type: map``
or ``set``), and list order after a merge keeps the live order. This module never stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.patch import MERGE_KEYS, SET_LISTS
from gitops.testing.kube.status import StatusError

__all__ = ["FieldSet", "Manager", "apply", "field_set", "path_string", "track_update"]

Path = tuple[str, ...]
FieldSet = set[Path]

#: metadata fields the server owns: never part of any manager's field set
_STRIP_META = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
})
_MISSING = object()
#: maps with free-form keys: an Update that creates one owns the map itself too (``.``)
_FREEFORM_MAPS = frozenset({
    "labels", "annotations", "data", "binaryData", "stringData", "matchLabels", "nodeSelector",
    "limits", "requests", "selector", "parameters",
})


@dataclass
class Manager:
    """One ``managedFields`` entry."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet = field(default_factory=set)
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Manager:
        return cls(
            manager=str(entry.get("manager", "")),
            operation=str(entry.get("operation", "Update")),
            api_version=str(entry.get("apiVersion", "")),
            time=str(entry.get("time", "")),
            fields=from_fields_v1(entry.get("fieldsV1") or {}),
            subresource=str(entry.get("subresource", "")),
        )


# -- keys of associative lists ------------------------------------------------------------------


def _list_keys(name: str, items: list[Any], list_types: dict[str, Any] | None) -> list[str] | None:
    """The key fields of list ``name``; None when the list is atomic (or a set)."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if list_types is not None:
        spec = list_types.get(name)
        if isinstance(spec, list):
            return spec
        return None
    if name == "ports":
        if all("containerPort" in i for i in items):
            return ["containerPort", "protocol"]
        if all("port" in i for i in items):
            return ["port", "protocol"]
        return None
    key = MERGE_KEYS.get(name)
    if key is None or not all(key in i for i in items):
        return None
    return [key]


def _key_value(item: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    out = {}
    for k in keys:
        if k in item:
            out[k] = item[k]
        elif k == "protocol":
            out[k] = "TCP"  # the server defaults it before keying
    return out


def _item_element(item: dict[str, Any], keys: list[str]) -> str:
    return "k:" + json.dumps(_key_value(item, keys), separators=(",", ":"), sort_keys=True)


def _matches(item: Any, key: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    return all(item.get(k, "TCP" if k == "protocol" else _MISSING) == v for k, v in key.items())


# -- field sets ------------------------------------------------------------------------------


def field_set(obj: dict[str, Any], *, scope: str = "main", has_status: bool = False,
              list_types: dict[str, Any] | None = None, nodes: bool = False) -> FieldSet:
    """The paths set in ``obj``: ``scope`` "main" skips ``status`` when it is a subresource,
    "status" keeps only ``status``; ``nodes`` adds free-form maps themselves (as an Update
    operation records them)."""
    out: FieldSet = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if scope == "status" and key != "status":
            continue
        if scope == "main" and key == "status" and has_status:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _STRIP_META}
            for mk, mv in meta.items():
                _walk(mk, mv, ("f:metadata", f"f:{mk}"), out, None, nodes)
            continue
        _walk(key, value, (f"f:{key}",), out, list_types, nodes)
    return out


def _walk(name: str, value: Any, path: Path, out: FieldSet, list_types: dict[str, Any] | None,
          nodes: bool = False) -> None:
    if isinstance(value, dict):
        if not value or (nodes and name in _FREEFORM_MAPS):
            out.add(path)
        for k, v in value.items():
            _walk(k, v, (*path, f"f:{k}"), out, list_types, nodes)
        return
    if isinstance(value, list):
        is_set = name in SET_LISTS if list_types is None else list_types.get(name) == "set"
        if is_set and value and all(not isinstance(v, (dict, list)) for v in value):
            for v in value:
                out.add((*path, "v:" + json.dumps(v, separators=(",", ":"))))
            return
        keys = _list_keys(name, value, list_types)
        if keys is None:
            out.add(path)
            return
        for item in value:
            ipath = (*path, _item_element(item, keys))
            out.add(ipath)
            for k, v in item.items():
                _walk(k, v, (*ipath, f"f:{k}"), out, list_types, nodes)
        return
    out.add(path)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The nested ``fieldsV1`` form of a field set (``"."`` marks a member with children)."""
    root: dict[str, Any] = {}
    paths = list(paths)
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = root
        for element in path:
            node = node[element]
        if any(k != "." for k in node):
            node["."] = {}
    return _sorted_tree(root)


def _sorted_tree(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted_tree(node[k]) for k in sorted(node)}


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for key, child in tree.items():
        if key == ".":
            out.add(prefix)
            continue
        path = (*prefix, key)
        if not child:
            out.add(path)
        else:
            out |= from_fields_v1(child, path)
    return out


def path_string(path: Path) -> str:
    """``.spec.template.spec.containers[name="app"].image``, as conflicts print paths."""
    parts = []
    for element in path:
        kind, text = element[0], element[2:]
        if kind == "f":
            parts.append(f".{text}")
        elif kind == "k":
            key = json.loads(text)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        elif kind == "v":
            parts.append(f"[={text}]")
        else:
            parts.append(f"[{text}]")
    return "".join(parts)


def _get(obj: Any, path: Path) -> Any:
    current = obj
    for element in path:
        kind, text = element[0], element[2:]
        if kind == "f":
            if not isinstance(current, dict) or text not in current:
                return _MISSING
            current = current[text]
        elif kind == "k":
            key = json.loads(text)
            if not isinstance(current, list):
                return _MISSING
            current = next((i for i in current if _matches(i, key)), _MISSING)
            if current is _MISSING:
                return _MISSING
        elif kind == "v":
            value = json.loads(text)
            if not isinstance(current, list) or value not in current:
                return _MISSING
            current = value
        else:
            index = int(text)
            if not isinstance(current, list) or index >= len(current):
                return _MISSING
            current = current[index]
    return current


def _is_key_field(path: Path) -> bool:
    """Whether ``path`` names a key field of the associative-list item it is in."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _leaves(paths: FieldSet) -> FieldSet:
    parents = {p[:n] for p in paths for n in range(len(p))}
    return {p for p in paths if p not in parents}


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Delete the value at ``path`` and any map or list it leaves empty."""
    chain: list[tuple[Any, str]] = []
    current: Any = obj
    for element in path:
        chain.append((current, element))
        kind, text = element[0], element[2:]
        nxt: Any
        if kind == "f":
            nxt = current.get(text, _MISSING) if isinstance(current, dict) else _MISSING
        elif kind == "k":
            key = json.loads(text)
            nxt = next((i for i in current if _matches(i, key)), _MISSING) if isinstance(current, list) else _MISSING
        elif kind == "v":
            nxt = json.loads(text)
        else:
            nxt = _MISSING
        if nxt is _MISSING:
            return
        current = nxt
    for depth in range(len(chain) - 1, -1, -1):
        container, element = chain[depth]
        kind, text = element[0], element[2:]
        if kind == "f":
            container.pop(text, None)
        elif kind == "k":
            key = json.loads(text)
            container[:] = [i for i in container if not _matches(i, key)]
        elif kind == "v":
            value = json.loads(text)
            container[:] = [i for i in container if i != value]
        if container or depth == 0 or (depth == 1 and chain[0][1] == "f:metadata"):
            return  # stop at a non-empty parent; never drop metadata itself


# -- merging -------------------------------------------------------------------------------


def _merge(live: Any, applied: Any, name: str, list_types: dict[str, Any] | None) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        result = dict(live)
        for key, value in applied.items():
            result[key] = _merge(live.get(key, _MISSING), value, key, list_types) if key in live else clone(value)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        is_set = name in SET_LISTS if list_types is None else list_types.get(name) == "set"
        if is_set:
            return [*clone(live), *(clone(v) for v in applied if v not in live)]
        keys = _list_keys(name, [*live, *applied], list_types)
        if keys is None:
            return clone(applied)
        result_list = [clone(i) for i in live]
        for item in applied:
            key = _key_value(item, keys)
            index = next((n for n, have in enumerate(result_list) if _matches(have, key)), None)
            if index is None:
                result_list.append(clone(item))
            else:
                result_list[index] = _merge(result_list[index], item, name, list_types)
        return result_list
    return clone(applied)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def managers_of(obj: dict[str, Any]) -> list[Manager]:
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return [Manager.from_json(e) for e in entries if isinstance(e, dict) and e.get("manager")]


def _set_managers(obj: dict[str, Any], managers: list[Manager]) -> None:
    kept = [m.to_json() for m in managers if m.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str, force: bool,
          api_version: str, now: str, has_status: bool, list_types: dict[str, Any] | None = None,
          subresource: str = "") -> dict[str, Any]:
    """Merge ``config`` into ``live`` (None: a create) for ``manager``; return the new object.

    Raises a 409 Conflict :class:`StatusError` listing the conflicting fields and managers.
    """
    scope = "status" if subresource == "status" else "main"
    config = _drop_nulls(config)
    config.get("metadata", {}).pop("managedFields", None)
    base = clone(live) if live is not None else {}
    managers = managers_of(base)
    if live is not None and not managers:
        # an object nobody manages (managedFields cleared, or written before SSA existed):
        # the real server hands every field to "before-first-apply" first
        fields = field_set(base, scope=scope, has_status=has_status, list_types=list_types, nodes=True)
        managers = [Manager("before-first-apply", "Update", api_version, "", fields)]
    applied = field_set(config, scope=scope, has_status=has_status, list_types=list_types)
    ident = (manager, "Apply", subresource)
    mine = next((m for m in managers if m.ident == ident), None)
    previous = mine.fields if mine else set()

    conflicts: list[tuple[str, Path]] = []
    for other in managers:
        if other.ident == ident:
            continue
        for path in sorted(_leaves(applied) & other.fields):
            have = _get(base, path)
            if have is not _MISSING and have != _get(config, path):
                conflicts.append((_describe(other), path))
        if force:
            taken = {p for p in other.fields & _leaves(applied) if _get(base, p) is not _MISSING and _get(base, p) != _get(config, p)}
            other.fields -= taken
    if conflicts and not force:
        raise _conflict_error(conflicts)

    owned_by_others = set().union(*(m.fields for m in managers if m.ident != ident)) if managers else set()
    kept = owned_by_others | applied
    removed: list[Path] = []
    for path in sorted(previous - applied, key=len):
        if any(path[: len(r)] == r for r in removed) or _is_key_field(path):
            continue  # gone with its item already, or part of an item's identity
        if any(p[: len(path)] == path for p in kept):
            continue
        _remove(base, path)
        removed.append(path)

    merged = _merge(base, _strip_for_merge(config, scope, has_status), "", list_types) if base else _strip_for_merge(config, scope, has_status)
    if mine is None:
        mine = Manager(manager, "Apply", api_version, now, subresource=subresource)
        managers.append(mine)
    if mine.fields != applied or mine.api_version != api_version:
        mine.time = now
    mine.fields = applied
    mine.api_version = api_version
    _set_managers(merged, managers)
    return dict(merged)


def _strip_for_merge(config: dict[str, Any], scope: str, has_status: bool) -> dict[str, Any]:
    out = clone(config)
    if scope == "main" and has_status:
        out.pop("status", None)
    return out


def _describe(manager: Manager) -> str:
    """How the real server names a manager in a conflict."""
    name = json.dumps(manager.manager)
    if manager.subresource:
        name += f" with subresource {json.dumps(manager.subresource)}"
    if manager.operation == "Update":
        name += f" using {manager.api_version}"
        if manager.time:
            name += f" at {manager.time}"
    return name


def _conflict_error(conflicts: list[tuple[str, Path]]) -> StatusError:
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path_string(path)}
        for who, path in conflicts
    ]
    if len(conflicts) == 1:
        who, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path_string(path)}"
    else:
        by_manager: dict[str, list[Path]] = {}
        for who, path in conflicts:
            by_manager.setdefault(who, []).append(path)
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, {"causes": causes})


def track_update(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str, api_version: str,
                 now: str, has_status: bool, list_types: dict[str, Any] | None = None,
                 subresource: str = "") -> None:
    """Record in ``new`` that ``manager`` wrote it over ``old`` (an ``Update`` operation)."""
    scope = "status" if subresource == "status" else "main"
    requested = managers_of(new) if not subresource else []
    old_managers = managers_of(old) if old is not None else []
    sent = (new.get("metadata") or {}).get("managedFields")
    if sent and sent != (old or {}).get("metadata", {}).get("managedFields"):
        # a client may rewrite managedFields directly: [{}] clears them, [] changes nothing
        managers = requested
    else:
        managers = old_managers
    old_fields = field_set(old, scope=scope, has_status=has_status, list_types=list_types, nodes=True) if old else set()
    new_fields = field_set(new, scope=scope, has_status=has_status, list_types=list_types, nodes=True)
    removed = old_fields - new_fields
    changed = {p for p in new_fields if p not in old_fields}
    changed |= {p for p in _leaves(new_fields) & old_fields if _get(old, p) != _get(new, p)}
    ident = (manager, "Update", subresource)
    for entry in managers:
        entry.fields -= removed
        if entry.ident != ident:
            entry.fields -= changed
    mine = next((m for m in managers if m.ident == ident), None)
    if changed:
        if mine is None:
            mine = Manager(manager, "Update", api_version, now, subresource=subresource)
            managers.append(mine)
        mine.fields |= changed
        mine.time = now
        mine.api_version = api_version
    _set_managers(new, managers)
