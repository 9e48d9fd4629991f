"""CustomResourceDefinitions: the checks the real server makes, and establishing them.

An accepted CRD gets the status a real cluster gives it (``NamesAccepted`` and
``Established`` True, ``acceptedNames``, ``storedVersions``) and the cleanup finalizer,
and its kinds are served at once (a real cluster takes a moment). Nothing here stores.
"""

from __future__ import annotations

import re
from typing import Any

from gitops.testing.kube.deletion import CRD_CLEANUP
from gitops.testing.kube.discovery import Discovery
from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.jsonpath import SUPPORTED, JsonPathError, compile_path
from gitops.testing.kube.status import invalid

__all__ = ["establish", "validate_crd"]

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")


def _column_causes(column: Any, field: str) -> list[tuple[str, str, str]]:
    """What apiextensions' ``ValidateCustomResourceColumnDefinition`` refuses, plus the JSONPaths
    the emulator cannot evaluate (refused rather than printed wrong)."""
    if not isinstance(column, dict):
        return [("FieldValueInvalid", field, "Invalid value: must be an object")]
    causes: list[tuple[str, str, str]] = []
    if not column.get("name"):
        causes.append(("FieldValueRequired", f"{field}.name", "Required value"))
    kind = column.get("type")
    if not kind:
        causes.append(("FieldValueRequired", f"{field}.type", f"Required value: must be one of {','.join(_COLUMN_TYPES)}"))
    elif kind not in _COLUMN_TYPES:
        causes.append(("FieldValueInvalid", f"{field}.type", f'Invalid value: "{kind}": must be one of {",".join(_COLUMN_TYPES)}'))
    fmt = column.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        causes.append(("FieldValueInvalid", f"{field}.format", f'Invalid value: "{fmt}": must be one of {",".join(_COLUMN_FORMATS)}'))
    path = column.get("jsonPath")
    if not path:
        causes.append(("FieldValueRequired", f"{field}.JSONPath", "Required value"))
    elif not str(path).startswith("."):
        causes.append(("FieldValueInvalid", f"{field}.JSONPath", f'Invalid value: "{path}": must be a simple json path starting with .'))
    else:
        try:
            compile_path(str(path))
        except JsonPathError:
            causes.append(("FieldValueInvalid", f"{field}.JSONPath", f'Invalid value: "{path}": the Kubernetes emulator evaluates only {SUPPORTED}'))
    return causes


def validate_crd(crd: dict[str, Any]) -> None:
    """Raise 422 Invalid for a CRD the real server would refuse (the common mistakes)."""
    name = str(crd.get("metadata", {}).get("name", ""))
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[tuple[str, str, str]] = []
    group = spec.get("group")
    plural = names.get("plural")
    if not group:
        causes.append(("FieldValueRequired", "spec.group", "Required value"))
    elif "." not in group:
        causes.append(("FieldValueInvalid", "spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'))
    if not plural:
        causes.append(("FieldValueRequired", "spec.names.plural", "Required value"))
    elif not _DNS_LABEL.match(plural):
        causes.append(("FieldValueInvalid", "spec.names.plural", f'Invalid value: "{plural}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\''))
    if not names.get("kind"):
        causes.append(("FieldValueRequired", "spec.names.kind", "Required value"))
    if not names.get("listKind") and names.get("kind"):
        names["listKind"] = f"{names['kind']}List"
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("FieldValueNotSupported", "spec.scope", f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"'))
    if group and plural and name != f"{plural}.{group}":
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("FieldValueInvalid", "spec.versions", "Invalid value: null: must have exactly one version marked as storage version"))
    else:
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if len(storage) != 1:
            causes.append(("FieldValueInvalid", "spec.versions", f"Invalid value: {[v.get('name') for v in versions if isinstance(v, dict)]}: must have exactly one version marked as storage version"))
        for i, version in enumerate(versions):
            if not isinstance(version, dict) or not version.get("name"):
                causes.append(("FieldValueRequired", f"spec.versions[{i}].name", "Required value"))
            elif not (version.get("schema") or {}).get("openAPIV3Schema"):
                causes.append(("FieldValueRequired", f"spec.versions[{i}].schema.openAPIV3Schema", "Required value: schemas are required"))
            if isinstance(version, dict):
                for j, column in enumerate(version.get("additionalPrinterColumns") or ()):
                    causes += _column_causes(column, f"spec.versions[{i}].additionalPrinterColumns[{j}]")
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)


def establish(crd: dict[str, Any], discovery: Discovery) -> dict[str, Any]:
    """The CRD with its accepted status and the cleanup finalizer (a copy)."""
    crd = clone(crd)
    meta = crd["metadata"]
    if not meta.get("deletionTimestamp"):
        finalizers = list(meta.get("finalizers") or [])
        if CRD_CLEANUP not in finalizers:
            finalizers.append(CRD_CLEANUP)
        meta["finalizers"] = finalizers
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    stamp = meta.get("creationTimestamp") or ""
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    old_status = crd.get("status") or {}
    stored = list(dict.fromkeys([*old_status.get("storedVersions", []), *storage]))
    conditions = [
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": stamp, "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": stamp, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
    ]
    if meta.get("deletionTimestamp"):
        conditions.append({"type": "Terminating", "status": "True", "lastTransitionTime": stamp, "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"})
    crd["status"] = {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}
    return crd
