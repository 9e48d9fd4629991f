"""The non-apply PATCH types: JSON patch, JSON merge patch, strategic merge patch.

Strategic merge is approximated without the Go struct tags: lists whose items carry a
known merge key (``name`` for containers, env, volumes; ``containerPort`` or ``port`` for
ports; ``mountPath``; ``type`` for conditions; ``uid`` for ownerReferences) are merged item
by item, ``finalizers`` merge as a set, other lists are replaced. ``$patch: delete`` and
``$patch: replace``, ``$deleteFromPrimitiveList/`` and ``$retainKeys`` are honoured;
``$setElementOrder/`` is accepted and ignored. These functions never touch storage.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.status import StatusError

__all__ = ["apply_json_patch", "apply_merge_patch", "apply_strategic_merge_patch", "list_merge_key"]

#: list field name -> merge key (strategic merge patch and server-side apply)
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
#: lists of scalars merged as sets
SET_LISTS = frozenset({"finalizers"})


def list_merge_key(field: str, items: list[Any]) -> str | None:
    """The merge key of list ``field`` given its items, or None for an atomic list."""
    if field == "ports":
        if any(isinstance(i, dict) and "containerPort" in i for i in items):
            return "containerPort"
        if any(isinstance(i, dict) and "port" in i for i in items):
            return "port"
        return None
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(i, dict) for i in items):
        return None
    return key


def _invalid(message: str) -> StatusError:
    return StatusError(422, "Invalid", message)


def apply_json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 6902; a failing operation is a 422 like the real server's."""
    if not isinstance(patch, list):
        raise StatusError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        result = jsonpatch.JsonPatch(patch).apply(obj)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise _invalid(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise _invalid(f"the server rejected our request due to an error in our request: {exc}") from exc
    if not isinstance(result, dict):
        raise _invalid("the patch must leave an object")
    return result


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """An approximation of Kubernetes' strategic merge patch (see the module docstring)."""
    if not isinstance(patch, dict):
        raise StatusError(400, "BadRequest", "strategic merge patch must be a JSON object")
    return _merge_map(target if isinstance(target, dict) else {}, patch)


def _merge_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    result = clone(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if isinstance(value.get("$patch"), str) and value["$patch"] == "delete":
                result.pop(key, None)
            else:
                current = result.get(key)
                result[key] = _merge_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = clone(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if not isinstance(current, list):
        current = []
    if field in SET_LISTS:
        merged = list(current)
        merged.extend(v for v in patch if v not in merged)
        return clone(merged)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    key = list_merge_key(field, [*current, *patch])
    if key is None:
        return clone(patch)
    result = [clone(i) for i in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(clone(item))
            continue
        index = next((n for n, have in enumerate(result) if isinstance(have, dict) and have.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_merge_map({}, item))
        else:
            result[index] = _merge_map(result[index], item)
    return result
