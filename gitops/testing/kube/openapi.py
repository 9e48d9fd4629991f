"""OpenAPI v3 as a Kubernetes 1.32 API server serves it, for built-in groups and for CRDs.

URL layout (the same as a real server's)::

    GET /openapi/v3                        {"paths": {"api/v1": {"serverRelativeURL":
                                             "/openapi/v3/api/v1?hash=<SHA-512, upper-case hex>"}, ...}}
    GET /openapi/v3/api/v1                 the core group's document
    GET /openapi/v3/apis/GROUP/VERSION     a group-version's document (any ``hash`` is accepted)

Built-in group-versions get the documents recorded from upstream, byte for byte
(:mod:`gitops.testing.kube.builtin_openapi`): object schemas with every
``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``, ``x-kubernetes-patch-merge-key``
and ``x-kubernetes-patch-strategy``. A served CustomResourceDefinition version gets a
document built the way apiextensions-apiserver's ``openapi/builder`` builds it: the CRD's
``openAPIV3Schema`` (with the list extensions it declares) as ``<reversed group>.<version>.<Kind>``
plus ``apiVersion``/``kind``/``metadata`` and ``x-kubernetes-group-version-kind``, a list
schema, and the CRD's operations (no strategic merge patch). kubectl reads these before
writing (it finds ``fieldValidation`` and leaves validation to the server) and
``kubectl explain`` works. Nothing here stores objects.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from typing import Any

from gitops.testing.kube import builtin_openapi
from gitops.testing.kube.builtin_openapi import gv_key
from gitops.testing.kube.discovery import Discovery, ResourceType

__all__ = ["document_bytes", "gv_path", "root", "schema_name"]

gv_path = gv_key
_REF = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# the template: a namespaced built-in kind with status and scale, as recorded
_TEMPLATE_GROUP, _TEMPLATE_KIND, _TEMPLATE_PLURAL = "apps", "Deployment", "deployments"
_CONSUMES = ("application/json", "application/yaml")
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_VERB_OF = {"get": "read", "put": "replace", "patch": "patch", "delete": "delete", "post": "create"}


def _digest(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


@functools.cache
def _builtin_digest(group: str, version: str) -> str:
    return _digest(builtin_openapi.raw_document(group, version) or b"")


def root(discovery: Discovery) -> dict[str, Any]:
    """``/openapi/v3``: every served group-version with a content-hashed URL."""
    paths = {}
    recorded = set(builtin_openapi.group_versions())
    for group, version in sorted(discovery.group_versions()):
        if (group, version) in recorded:
            digest = _builtin_digest(group, version)
        else:
            data = document_bytes(discovery, group, version)
            if data is None:
                continue
            digest = _digest(data)
        key = gv_key(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def document_bytes(discovery: Discovery, group: str, version: str) -> bytes | None:
    """The OpenAPI v3 document of a served group-version (JSON bytes), or None."""
    if not discovery.serves(group, version):
        return None
    raw = builtin_openapi.raw_document(group, version)
    if raw is not None:
        return raw
    types = sorted((t for t in discovery.types() if t.custom and t.group == group and version in t.versions),
                   key=lambda t: t.plural)
    if not types:
        return None
    return json.dumps(_crd_document(types, version), separators=(",", ":"), sort_keys=True).encode()


def schema_name(group: str, version: str, kind: str) -> str:
    """The component name of a CRD kind: ``example.com/v1.Widget`` -> ``com.example.v1.Widget``."""
    return ".".join([*reversed(group.split(".")), version, kind])


# -- documents of CustomResourceDefinitions ------------------------------------------------------


def _crd_document(types: list[ResourceType], version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rtype in types:
        name = schema_name(rtype.group, version, rtype.kind)
        schemas[name] = _object_schema(rtype, version)
        schemas[f"{name}List"] = _list_schema(rtype, version, name)
        paths.update(_crd_paths(rtype, version, name))
    pool = (builtin_openapi.document(_TEMPLATE_GROUP, "v1") or {}).get("components", {}).get("schemas", {})
    pending = [ref for node in (paths, schemas) for ref in _refs(node)]
    while pending:
        ref = pending.pop()
        if ref not in schemas and ref in pool:
            schemas[ref] = copy.deepcopy(pool[ref])
            pending.extend(_refs(pool[ref]))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _refs(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            out.append(ref[len(_REF):])
        for value in node.values():
            out += _refs(value)
    elif isinstance(node, list):
        for value in node:
            out += _refs(value)
    return out


def _template_schema() -> dict[str, Any]:
    found = builtin_openapi.schema(_TEMPLATE_GROUP, "v1", f"io.k8s.api.{_TEMPLATE_GROUP}.v1.{_TEMPLATE_KIND}")
    assert found is not None, "the recorded apps/v1 document has no Deployment schema"
    return found


def _object_schema(rtype: ResourceType, version: str) -> dict[str, Any]:
    """The CRD's schema with the properties every Kubernetes object has (builder's ``buildKubeNative``)."""
    given = rtype.schemas.get(version)
    gvk = [{"group": rtype.group, "kind": rtype.kind, "version": version}]
    if not isinstance(given, dict):
        return {"type": "object", "x-kubernetes-group-version-kind": gvk}
    out = _unfold(copy.deepcopy(given))
    out.setdefault("type", "object")
    props = out.setdefault("properties", {})
    template = _template_schema()["properties"]
    for field in ("apiVersion", "kind"):
        props[field] = copy.deepcopy(template[field])
    props["metadata"] = {"allOf": [{"$ref": f"{_REF}{_META}ObjectMeta"}], "description": template["metadata"]["description"]}
    out["x-kubernetes-group-version-kind"] = gvk
    return out


def _unfold(node: dict[str, Any]) -> dict[str, Any]:
    """Structural-schema ``Unfold``: int-or-string gains its ``anyOf``, embedded resources their
    ``apiVersion``/``kind``/``metadata``."""
    for sub in (node.get("properties") or {}).values():
        if isinstance(sub, dict):
            _unfold(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _unfold(node[key])
    if node.get("x-kubernetes-int-or-string") is True:
        pattern = [{"type": "integer"}, {"type": "string"}]
        if node.get("anyOf") != pattern and not (node.get("allOf") and node["allOf"][0].get("anyOf") == pattern):
            if "anyOf" not in node:
                node["anyOf"] = pattern
            else:
                node["allOf"] = [{"anyOf": pattern}, *(node.get("allOf") or [])]
    if node.get("x-kubernetes-embedded-resource") is True:
        template = _template_schema()["properties"]
        props = node.setdefault("properties", {})
        props["apiVersion"] = copy.deepcopy(template["apiVersion"])
        props["kind"] = copy.deepcopy(template["kind"])
        props["metadata"] = {"allOf": [{"$ref": f"{_REF}{_META}ObjectMeta"}], "description": template["metadata"]["description"]}
        required = node.setdefault("required", [])
        required += [f for f in ("kind", "apiVersion") if f not in required]
    return node


def _list_schema(rtype: ResourceType, version: str, name: str) -> dict[str, Any]:
    template = _template_schema()["properties"]
    return {
        "description": f"{rtype.kind}List is a list of {rtype.kind}",
        "properties": {
            "apiVersion": copy.deepcopy(template["apiVersion"]),
            "items": {
                "description": f"List of {rtype.plural}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "items": {"$ref": f"{_REF}{name}"},
                "type": "array",
            },
            "kind": copy.deepcopy(template["kind"]),
            "metadata": {"allOf": [{"$ref": f"{_REF}{_META}ListMeta"}],
                         "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": rtype.group, "kind": f"{rtype.kind}List", "version": version}],
    }


def _operation_id(verb: str, rtype: ResourceType, version: str, scope: str, sub: str) -> tuple[str, str]:
    """apiserver's ``GetOperationIDAndTags``: ``listExampleComV1NamespacedWidget``, tag ``exampleCom_v1``."""
    group = _camel(rtype.group.removesuffix(".k8s.io"), capitalize=False)
    tag = f"{group}_{_camel(version, capitalize=False)}"
    # the shortest known verb is the prefix: "deletecollection" reads as "delete" + "Collection..."
    prefix, rest = ("delete", "Collection") if verb == "deletecollection" else (verb, "")
    ident = prefix + _camel(group, capitalize=True) + _camel(version, capitalize=True) + rest + scope + rtype.kind + sub.title()
    return ident, tag


def _camel(text: str, *, capitalize: bool) -> str:
    """apiserver's ``ToValidOperationID``: drop non-letters, capitalize what follows them."""
    out, upper = [], capitalize
    for i, char in enumerate(text):
        if char.isalpha() or char == "_" or (i and char.isdigit()):
            out.append(char.upper() if upper else char)
            upper = False
        else:
            upper = True
    return "".join(out)


def _description(verb: str, kind: str, sub: str) -> str:
    """apiextensions' ``descriptionFor``."""
    of = f" {sub} of" if sub else ""
    article = " an " if kind[:1].lower() in "aeiou" else " a "
    if verb == "list":
        return f"list{of} objects of kind {kind}"
    if verb == "deletecollection":
        return f"delete collection of{of + ' a' if sub else ''} {kind}"
    if verb == "patch":
        return f"partially update{of} the specified {kind}"
    if verb in ("read", "replace"):
        return f"{verb}{of} the specified {kind}"
    return f"{verb}{of}{article}{kind}"


def _retarget(node: Any, old: str, new: str) -> Any:
    """A copy of ``node`` with references to schema ``old`` (and ``oldList``) pointing at ``new``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and value in (f"{_REF}{old}", f"{_REF}{old}List"):
                out[key] = f"{_REF}{new}" + ("List" if value.endswith("List") else "")
            elif key == "content" and isinstance(value, dict):
                out[key] = _content(value, old, new)
            else:
                out[key] = _retarget(value, old, new)
        return out
    if isinstance(node, list):
        return [_retarget(value, old, new) for value in node]
    return node


def _content(content: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """CRDs produce and consume JSON and YAML only (no protobuf, CBOR or strategic merge patch)."""
    schema: Any = next(iter(content.values()), {})
    if any(t.startswith("application/apply-patch") or t.endswith("patch+json") for t in content):
        types: tuple[str, ...] = _PATCH_TYPES
    else:
        types = _CONSUMES
    return {t: _retarget(content.get(t, schema), old, new) for t in types}


def _crd_paths(rtype: ResourceType, version: str, name: str) -> dict[str, Any]:
    doc = builtin_openapi.document(_TEMPLATE_GROUP, "v1") or {}
    old = f"io.k8s.api.{_TEMPLATE_GROUP}.v1.{_TEMPLATE_KIND}"
    base = f"/apis/{_TEMPLATE_GROUP}/v1/namespaces/{{namespace}}/{_TEMPLATE_PLURAL}"
    prefix = f"/apis/{rtype.group}/{version}"
    root = f"{prefix}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced else f"{prefix}/{rtype.plural}"
    scope = "Namespaced" if rtype.namespaced else ""
    wanted = [("", base, root), ("/{name}", f"{base}/{{name}}", f"{root}/{{name}}")]
    wanted += [(f"/{{name}}/{sub}", f"{base}/{{name}}/{sub}", f"{root}/{{name}}/{sub}")
               for sub in ("status", "scale") if sub in rtype.subresources]
    out: dict[str, Any] = {}
    gvk = {"group": rtype.group, "kind": rtype.kind, "version": version}
    for suffix, source, target in wanted:
        sub = suffix.rsplit("/", 1)[-1] if suffix.count("/") == 2 else ""
        item = _retarget(doc["paths"][source], old, name)
        for method, op in list(item.items()):
            if method == "parameters":
                item[method] = [_param(p, rtype) for p in op if rtype.namespaced or p["name"] != "namespace"]
                continue
            verb = "list" if method == "get" and not suffix else "deletecollection" if method == "delete" and not suffix else _VERB_OF[method]
            op["operationId"], tag = _operation_id(verb, rtype, version, scope, sub)
            op["tags"] = [tag]
            op["description"] = _description(verb, rtype.kind, sub)
            op["x-kubernetes-group-version-kind"] = dict(gvk)
        out[target] = item
    if rtype.namespaced:
        item = _retarget(doc["paths"][f"/apis/{_TEMPLATE_GROUP}/v1/{_TEMPLATE_PLURAL}"], old, name)
        op = item["get"]
        op["operationId"], tag = _operation_id("list", rtype, version, "", "")
        op["operationId"] += "ForAllNamespaces"
        op["tags"] = [tag]
        op["description"] = _description("list", rtype.kind, "")
        op["x-kubernetes-group-version-kind"] = dict(gvk)
        out[f"{prefix}/{rtype.plural}"] = item
    return out


def _param(param: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
    if param.get("name") == "name" and param.get("in") == "path":
        return {**param, "description": f"name of the {rtype.kind}"}
    return param
