"""Minimal OpenAPI v3 documents generated from discovery (``/openapi/v3`` and per group-version).

kubectl reads ``/openapi/v3`` before it writes, to learn whether the server validates
fields itself: it looks for the ``fieldValidation`` query parameter on the PATCH
operation tagged with the kind's ``x-kubernetes-group-version-kind``. These documents
declare exactly that (every operation with its real parameters), so kubectl sends
``fieldValidation=Strict`` and skips client-side schema validation. They carry no object
schemas: the emulator does not validate against schemas (see the docs). The real
documents (``api/openapi-spec/v3`` in kubernetes/kubernetes) are several megabytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gitops.testing.kube.discovery import Discovery, ResourceType

__all__ = ["document", "gv_path", "root"]

_VERSION = "v1.33.0"
_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
    "force": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    "labelSelector": "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    "limit": "limit is a maximum number of responses to return for a list call.",
    "continue": "The continue option should be set when retrieving more results from the server.",
    "resourceVersion": "resourceVersion sets a constraint on what resource versions a request may be served from.",
    "timeoutSeconds": "Timeout for the list/watch call.",
    "watch": "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    "allowWatchBookmarks": "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    "propagationPolicy": "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.",
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "pretty": "If 'true', then the output is pretty printed.",
}
_BOOLEAN = {"force", "watch", "allowWatchBookmarks"}
_INTEGER = {"limit", "timeoutSeconds", "gracePeriodSeconds"}


def gv_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/apps/v1``: the key of a group-version in the root document."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _param(name: str) -> dict[str, Any]:
    kind = "boolean" if name in _BOOLEAN else "integer" if name in _INTEGER else "string"
    schema: dict[str, Any] = {"type": kind, "uniqueItems": True}
    return {"name": name, "in": "query", "description": _QUERY[name], "schema": schema}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(verb: str, action: str, rtype: ResourceType, version: str, params: list[str], schema: str,
        scope: str, body: bool = False) -> dict[str, Any]:
    gvk = {"group": rtype.group, "version": version, "kind": rtype.kind}
    group_id = "".join(p.capitalize() for p in (rtype.group.split(".")[0] if rtype.group else "core", version))
    op: dict[str, Any] = {
        "tags": [f"{rtype.group.split('.')[0] if rtype.group else 'core'}_{version}"],
        "description": f"{action} {rtype.kind}",
        "operationId": f"{verb}{group_id}{scope}{rtype.kind}",
        "parameters": [_param(p) for p in params],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(schema)}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body:
        types = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json",
                 "application/apply-patch+yaml"] if verb == "patch" else ["*/*"]
        patch_schema = _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch") if verb == "patch" else _ref(schema)
        op["requestBody"] = {"content": {t: {"schema": patch_schema} for t in types}, "required": True}
    return op


def _schema_name(rtype: ResourceType, version: str) -> str:
    group = rtype.group or "core"
    return f"io.k8s.emulated.{group}.{version}.{rtype.kind}"


def document(discovery: Discovery, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version, or None if it is not served."""
    if not discovery.serves(group, version):
        return None
    prefix = f"/{gv_path(group, version)}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status": {"type": "object", "description": "Status is a return value for calls that don't return other objects."},
    }
    for rtype in sorted(discovery.types(), key=lambda t: t.plural):
        if rtype.group != group or version not in rtype.versions:
            continue
        name = _schema_name(rtype, version)
        schemas[name] = {"type": "object", "description": f"{rtype.kind}: an object schema is not recorded by the emulator.",
                         "x-kubernetes-preserve-unknown-fields": True}
        schemas[f"{name}List"] = {"type": "object", "description": f"{rtype.kind}List"}
        scope = "Namespaced" if rtype.namespaced else ""
        base = f"{prefix}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced else f"{prefix}/{rtype.plural}"
        path_params = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}] if rtype.namespaced else []
        name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}
        list_params = ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "timeoutSeconds", "watch"]
        paths[base] = {
            "get": _op("list", "list", rtype, version, list_params, f"{name}List", scope),
            "post": _op("create", "post", rtype, version, ["dryRun", "fieldManager", "fieldValidation"], name, scope, body=True),
            "delete": _op("deletecollection", "deletecollection", rtype, version, ["dryRun", "gracePeriodSeconds", "propagationPolicy", "labelSelector", "fieldSelector"], "io.k8s.apimachinery.pkg.apis.meta.v1.Status", scope),
            "parameters": [*path_params, _param("pretty")],
        }
        paths[f"{base}/{{name}}"] = {
            "get": _op("read", "get", rtype, version, [], name, scope),
            "put": _op("replace", "put", rtype, version, ["dryRun", "fieldManager", "fieldValidation"], name, scope, body=True),
            "patch": _op("patch", "patch", rtype, version, ["dryRun", "fieldManager", "fieldValidation", "force"], name, scope, body=True),
            "delete": _op("delete", "delete", rtype, version, ["dryRun", "gracePeriodSeconds", "propagationPolicy"], name, scope),
            "parameters": [name_param, *path_params, _param("pretty")],
        }
        for sub in sorted(rtype.subresources & {"status"}):
            paths[f"{base}/{{name}}/{sub}"] = {
                "get": _op("read", "get", rtype, version, [], name, scope + "Status"),
                "put": _op("replace", "put", rtype, version, ["dryRun", "fieldManager", "fieldValidation"], name, scope + "Status", body=True),
                "patch": _op("patch", "patch", rtype, version, ["dryRun", "fieldManager", "fieldValidation", "force"], name, scope + "Status", body=True),
                "parameters": [name_param, *path_params, _param("pretty")],
            }
        if rtype.namespaced:
            paths[f"{prefix}/{rtype.plural}"] = {
                "get": _op("list", "list", rtype, version, list_params, f"{name}List", "ForAllNamespaces"),
                "parameters": [_param("pretty")],
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (gitops emulator)", "version": _VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root(discovery: Discovery) -> dict[str, Any]:
    """``/openapi/v3``: each served group-version with a content-hashed URL."""
    paths = {}
    for group, version in sorted(discovery.group_versions()):
        doc = document(discovery, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()
        key = gv_path(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
