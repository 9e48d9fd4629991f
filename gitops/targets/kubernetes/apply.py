"""Server-side apply requests: the body, the query, and what a failure means.

A sync takes ownership of the fields it declares, as Flux and Argo CD do: applies are
``force=true`` by default, so drift made by ``kubectl edit`` or another controller is
healed; with ``force=false`` a field-manager conflict is reported instead. Pure
functions: the target sends the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops.model import Resource
from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.options import KubernetesOptions

__all__ = [
    "applied_version",
    "apply_body",
    "apply_query",
    "delete_body",
    "missing_namespace",
    "namespace_manifest",
]


#: Set by the server; in an apply body they would be preconditions or errors.
_SERVER_FIELDS = (
    "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
    "deletionTimestamp", "deletionGracePeriodSeconds",
)


def apply_body(resource: Resource) -> dict[str, Any]:
    """The apply configuration: the manifest without server-set fields or status.

    Copies only the dicts it changes; the caller's manifest is never modified.
    """
    manifest = resource.manifest
    metadata = {k: v for k, v in (manifest.get("metadata") or {}).items()
                if k not in _SERVER_FIELDS}
    body = {k: v for k, v in manifest.items() if k != "status"}
    body["metadata"] = metadata
    return body


def apply_query(options: KubernetesOptions, *, dry_run: bool) -> list[tuple[str, str]]:
    """The query of a server-side apply PATCH."""
    query = [
        ("fieldManager", options.field_manager),
        ("fieldValidation", options.field_validation),
        ("force", "true" if options.force else "false"),
    ]
    if dry_run:
        query.append(("dryRun", "All"))
    return query


def delete_body(options: KubernetesOptions, uid: str | None) -> dict[str, Any]:
    """DeleteOptions with the propagation policy, and the uid the plan saw as precondition."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": options.propagation_policy,
    }
    if uid:
        body["preconditions"] = {"uid": uid}
    return body


def missing_namespace(error: StatusError, namespace: str) -> bool:
    """Whether a 404 says the object's namespace does not exist (not the object itself)."""
    if error.code != 404 or not namespace:
        return False
    details = error.details
    if details.get("kind") == "namespaces":
        return details.get("name") in (None, namespace)
    return f'namespaces "{namespace}" not found' in error.message


def namespace_manifest(name: str) -> dict[str, Any]:
    """A Namespace the target creates on its own (not owned, never pruned)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gitops"}},
    }


def applied_version(obj: Mapping[str, Any], manager: str) -> str | None:
    """The version ``manager`` last server-side applied ``obj`` at (its ``Apply`` entry).

    None when it never applied the object's main resource (an object made by someone
    else, or only by non-apply writes). Reading the object back at this version compares
    like with like: desired was written at it, and the entry's field paths are its own.
    """
    entries = (obj.get("metadata") or {}).get("managedFields")
    for entry in entries if isinstance(entries, list) else ():
        if (isinstance(entry, dict) and entry.get("manager") == manager
                and entry.get("operation") == "Apply" and not entry.get("subresource")):
            api_version = entry.get("apiVersion")
            if isinstance(api_version, str) and api_version:
                return api_version.rpartition("/")[2]
    return None
