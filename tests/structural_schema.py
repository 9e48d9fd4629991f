"""Kubernetes' rules for CRD schemas, as a checker, and a validator of objects against one.

:func:`structural_problems` follows apiextensions-apiserver (``validation.go``:
``ValidateCustomResourceDefinitionOpenAPISchema`` and its ``specStandardValidatorV3``;
``schema/validation.go``: ``ValidateStructural``): the keywords a ``JSONSchemaProps``
has, those the server forbids, the structural invariants (a type everywhere, no
``additionalProperties`` beside ``properties`` nor at the root, root ``metadata``
restricting only ``name``/``generateName``, nothing but value validations under
``allOf``/``anyOf``/``oneOf``/``not``, list-type rules) and defaults that validate and
survive pruning. :func:`instance_problems` validates a value as the API server would
with ``fieldValidation=Strict`` (unknown fields are errors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: the JSON names of apiextensions/v1 JSONSchemaProps: anything else is an unknown field
SCHEMA_KEYWORDS = frozenset({
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties", "minProperties",
    "required", "items", "allOf", "oneOf", "anyOf", "not", "properties", "additionalProperties",
    "patternProperties", "dependencies", "additionalItems", "definitions", "externalDocs",
    "example", "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
    "x-kubernetes-map-type", "x-kubernetes-validations",
})
FORBIDDEN = {
    "id": "id is not supported",
    "$ref": "$ref is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
}
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# what a node under a junctor must not carry ("must be empty to be structural")
NOT_IN_JUNCTOR = ("type", "description", "title", "default", "nullable", "additionalProperties",
                  "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                  "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
                  "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations")
RE2_UNSUPPORTED = re.compile(r"\(\?[=!<]|\\[1-9]")  # lookaround, backreferences


def structural_problems(schema: Mapping[str, Any]) -> list[str]:
    """Every reason the API server would refuse ``schema`` as a CRD's openAPIV3Schema."""
    problems: list[str] = []
    _node(schema, "openAPIV3Schema", "root", problems)
    return problems


def _node(node: Any, path: str, level: str, problems: list[str]) -> None:
    if not isinstance(node, Mapping):
        problems.append(f"{path}: a schema must be an object")
        return
    _keywords(node, path, problems)
    kind = node.get("type")
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if preserve is not None and preserve is not True:
        problems.append(f"{path}.x-kubernetes-preserve-unknown-fields: must be true or undefined")
    if preserve is True and int_or_string:
        problems.append(f"{path}: x-kubernetes-preserve-unknown-fields and -int-or-string exclude each other")
    if not kind and preserve is not True and not int_or_string:
        problems.append(f"{path}.type: must not be empty ({level})")
    if level == "root" and kind not in (None, "object"):
        problems.append(f"{path}.type: must be object at the root")
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if extra is not None:
        if level == "root":
            problems.append(f"{path}.additionalProperties: must not be used at the root")
        if props:
            problems.append(f"{path}.additionalProperties: additionalProperties and properties are mutual exclusive")
        if extra is False:
            problems.append(f"{path}.additionalProperties: false says nothing (unknown fields are pruned)")
        elif isinstance(extra, Mapping):
            _node(extra, f"{path}.additionalProperties", "field", problems)
    if props is not None and kind not in (None, "object"):
        problems.append(f"{path}: properties on a {kind}")
    for name, sub in (props or {}).items():
        _node(sub, f"{path}.properties[{name}]", "field", problems)
    items = node.get("items")
    if kind == "array" and items is None:
        problems.append(f"{path}.items: must be specified")
    if isinstance(items, list):
        problems.append(f"{path}.items: must be a schema object and not an array")
    elif items is not None:
        _node(items, f"{path}.items", "item", problems)
    if level == "root":
        _root_metadata(node, path, problems)
    for junctor in JUNCTORS:
        for i, sub in enumerate(_branches(node, junctor)):
            _junctor(sub, node, f"{path}.{junctor}[{i}]", problems)
    pattern = node.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{path}.pattern: not a regular expression ({exc})")
        if RE2_UNSUPPORTED.search(pattern):
            problems.append(f"{path}.pattern: lookaround or backreference (Go's RE2 has neither)")
    _list_type(node, path, problems)
    if "default" in node:
        default_problems = instance_problems(node, node["default"], f"{path}.default")
        problems.extend(f"default does not validate: {p}" for p in default_problems)


def _keywords(node: Mapping[str, Any], path: str, problems: list[str]) -> None:
    """What any schema node is refused for, inside a junctor or not."""
    for key in node:
        if key not in SCHEMA_KEYWORDS:
            problems.append(f"{path}: unknown field {key!r}")
        elif key in FORBIDDEN:
            problems.append(f"{path}.{key}: {FORBIDDEN[key]}")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}.uniqueItems: cannot be set to true")
    kind = node.get("type")
    if kind == "null":
        problems.append(f"{path}.type: cannot be null, use nullable")
    elif kind is not None and kind not in TYPES:
        problems.append(f"{path}.type: unsupported {kind!r}")


def _root_metadata(root: Mapping[str, Any], path: str, problems: list[str]) -> None:
    """Root metadata may only restrict name and generateName; root meta fields no defaults."""
    props = root.get("properties") or {}
    for field in ("apiVersion", "kind"):
        if field in props and props[field].get("type") != "string":
            problems.append(f"{path}.properties[{field}].type: must be string")
    meta = props.get("metadata")
    if meta is None:
        return
    where = f"{path}.properties[metadata]"
    if meta.get("type") != "object":
        problems.append(f"{where}.type: must be object")
    allowed = {"type", "properties"}
    for key in meta:
        if key not in allowed:
            problems.append(f"{where}: must not specify anything other than name and generateName ({key})")
    for name in meta.get("properties") or {}:
        if name not in ("name", "generateName"):
            problems.append(f"{where}: must not specify anything other than name and generateName ({name})")
    for field in ("apiVersion", "kind", "metadata"):
        if field in props and _has_default(props[field]):
            problems.append(f"{path}.properties[{field}]: default must not be set in top-level {field}")


def _has_default(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return False
    if "default" in node:
        return True
    subs = [*(node.get("properties") or {}).values(), node.get("items"), node.get("additionalProperties")]
    return any(_has_default(sub) for sub in subs)


def _branches(node: Mapping[str, Any], junctor: str) -> list[Any]:
    value = node.get(junctor)
    if value is None:
        return []
    return [value] if junctor == "not" else list(value)


def _junctor(sub: Any, core: Mapping[str, Any] | None, path: str, problems: list[str]) -> None:
    """A value validation under a junctor: nothing structural, and only what the core specifies."""
    if not isinstance(sub, Mapping):
        problems.append(f"{path}: a schema must be an object")
        return
    _keywords(sub, path, problems)
    int_or_string = core is not None and core.get("x-kubernetes-int-or-string") is True
    for key in NOT_IN_JUNCTOR:
        if key in sub and not (int_or_string and key == "type" and sub[key] in ("integer", "string")):
            problems.append(f"{path}.{key}: must be empty to be structural")
    core_props = (core or {}).get("properties") or {}
    for name, prop in (sub.get("properties") or {}).items():
        if name == "metadata":
            problems.append(f"{path}.properties[metadata]: must not be specified in a nested context")
        if name not in core_props:
            problems.append(f"{path}.properties[{name}]: must be specified outside the junctor too")
        _junctor(prop, core_props.get(name), f"{path}.properties[{name}]", problems)
    if "items" in sub:
        if not (core or {}).get("items"):
            problems.append(f"{path}.items: must be specified outside the junctor too")
        _junctor(sub["items"], (core or {}).get("items"), f"{path}.items", problems)
    for junctor in JUNCTORS:
        for i, nested in enumerate(_branches(sub, junctor)):
            _junctor(nested, core, f"{path}.{junctor}[{i}]", problems)


def _list_type(node: Mapping[str, Any], path: str, problems: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys") or []
    if list_type is None:
        if keys:
            problems.append(f"{path}.x-kubernetes-list-type: must be map if x-kubernetes-list-map-keys is non-empty")
        return
    if node.get("type") != "array":
        problems.append(f"{path}.type: must be array if x-kubernetes-list-type is specified")
    if list_type not in ("atomic", "set", "map"):
        problems.append(f"{path}.x-kubernetes-list-type: unsupported {list_type!r}")
    items = node.get("items") or {}
    if list_type in ("set", "map") and items.get("nullable"):
        problems.append(f"{path}.items.nullable: cannot be nullable when x-kubernetes-list-type is {list_type}")
    if list_type != "map":
        return
    if not keys:
        problems.append(f"{path}.x-kubernetes-list-map-keys: must not be empty if x-kubernetes-list-type is map")
    if items.get("type") != "object":
        problems.append(f"{path}.items.type: must be object if x-kubernetes-list-type is map")
    props = items.get("properties") or {}
    required = set(items.get("required") or [])
    for key in keys:
        prop = props.get(key)
        if prop is None:
            problems.append(f"{path}.x-kubernetes-list-map-keys: {key} is not an item property")
            continue
        if prop.get("type") in ("array", "object"):
            problems.append(f"{path}.items.properties[{key}].type: must be a scalar type")
        if key not in required and "default" not in prop:
            problems.append(f"{path}.items.properties[{key}]: a map key must be required or have a default")
        if prop.get("nullable"):
            problems.append(f"{path}.items.properties[{key}].nullable: a map key cannot be nullable")


# -- objects --------------------------------------------------------------------------------------


def instance_problems(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Why ``value`` fails ``schema`` (a structural schema), strict about unknown fields."""
    problems: list[str] = []
    _value(schema, value, path or ".", problems)
    return problems


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


def _value(schema: Mapping[str, Any], value: Any, path: str, problems: list[str]) -> None:
    if value is None:
        if not schema.get("nullable"):
            problems.append(f"{path}: must not be null")
        return
    kind = schema.get("type")
    if kind is not None:
        expected = _PYTHON_TYPES[kind]
        if not isinstance(value, expected) or (kind in ("integer", "number") and isinstance(value, bool)):
            problems.append(f"{path}: must be of type {kind}")
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: Unsupported value (supported: {schema['enum']})")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: should match {schema['pattern']!r}")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{path}: too long")
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: too short")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                problems.append(f"{path}: not an RFC 3339 date-time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
            problems.append(f"{path}: below the minimum {low}")
        if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
            problems.append(f"{path}: above the maximum {high}")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            problems.append(f"{path}: must have at most {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: must have at least {schema['minItems']} items")
        for i, item in enumerate(value):
            _value(schema.get("items") or {"x-kubernetes-preserve-unknown-fields": True}, item,
                   f"{path}[{i}]", problems)
    if isinstance(value, dict):
        for name in schema.get("required") or []:
            if name not in value:
                problems.append(f"{path}.{name}: Required value")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            where = f"{path}.{name}" if path != "." else f".{name}"
            if props is not None and name in props:
                _value(props[name], item, where, problems)
            elif isinstance(extra, Mapping):
                _value(extra, item, where, problems)
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
                problems.append(f"{where}: unknown field")
