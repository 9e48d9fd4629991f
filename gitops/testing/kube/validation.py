"""Validation the real API server performs and clients rely on: names, metadata, a few specs.

Each check returns causes ``(reason, field, message)``; :func:`validate` raises one 422
Invalid :class:`~gitops.testing.kube.status.StatusError` with all of them, worded like
the real server. Only what GitOps tools commonly trip over is checked (see
``docs/kubernetes-emulator.md``); there is no OpenAPI schema validation.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gitops.testing.kube import builtin_openapi
from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.status import invalid

__all__ = ["Cause", "name_causes", "qualified_name_causes", "validate", "validate_immutable"]

Cause = tuple[str, str, str]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _quote(value: Any) -> str:
    return json.dumps(value)


def name_causes(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    """Causes for an invalid object name of ``kind`` (empty when it is fine)."""
    if kind == "Namespace":
        if len(name) > 63:
            return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: must be no more than 63 characters")]
        if not _DNS1123_LABEL.match(name):
            return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: {_LABEL_MSG}")]
        return []
    if kind == "Service":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: {_DNS1035_MSG}")]
        return []
    if kind in _RBAC_KINDS:
        if name in (".", "..") or "/" in name or "%" in name:
            return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: may not contain '/' or '%'")]
        return []
    if len(name) > 253:
        return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: must be no more than 253 characters")]
    if not _DNS1123_SUBDOMAIN.match(name):
        return [("FieldValueInvalid", field, f"Invalid value: {_quote(name)}: {_SUBDOMAIN_MSG}")]
    return []


def qualified_name_causes(key: str, field: str) -> list[Cause]:
    """Causes for a value that is not a qualified name (``prefix/name``, as label keys are)."""
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return [("FieldValueInvalid", field, f"Invalid value: {_quote(key)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]
    return []


def metadata_causes(meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [("FieldValueInvalid", "metadata.labels", "Invalid value: must be a map of strings")]
    for key, value in labels.items():
        causes += qualified_name_causes(key, "metadata.labels")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(("FieldValueInvalid", "metadata.labels", f"Invalid value: {_quote(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*causes, ("FieldValueInvalid", "metadata.annotations", "Invalid value: must be a map of strings")]
    size = 0
    for key, value in annotations.items():
        causes += qualified_name_causes(str(key).lower(), "metadata.annotations")
        if not isinstance(value, str):
            causes.append(("FieldValueInvalid", f"metadata.annotations.{key}", "Invalid value: must be a string"))
            continue
        size += len(key) + len(value)
    if size > 256 * 1024:
        causes.append(("FieldValueTooLong", "metadata.annotations", f"Too long: may not be more than 262144 bytes (got {size})"))
    return causes


def _pod_spec_causes(spec: Any, field: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", field, "Required value")]
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{field}.containers", "Required value")]
    causes: list[Cause] = []
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            causes.append(("FieldValueInvalid", f"{field}.containers[{i}]", "Invalid value: must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(("FieldValueRequired", f"{field}.containers[{i}].name", "Required value"))
        elif not _DNS1123_LABEL.match(str(name)):
            causes.append(("FieldValueInvalid", f"{field}.containers[{i}].name", f"Invalid value: {_quote(name)}: {_LABEL_MSG}"))
        if not container.get("image"):
            causes.append(("FieldValueRequired", f"{field}.containers[{i}].image", "Required value"))
    return causes


def _selector_matches(selector: Any, labels: dict[str, Any]) -> bool:
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in match_labels.items()) and bool(match_labels or selector.get("matchExpressions"))


def spec_causes(rtype: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """Kind-specific checks: workloads need a selector matching their template, and containers."""
    spec = obj.get("spec")
    causes: list[Cause] = []
    kind = rtype.kind if not rtype.custom else ""
    if rtype.group == "apps" and kind in _WORKLOADS:
        if not isinstance(spec, dict):
            return [("FieldValueRequired", "spec", "Required value")]
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        elif not _selector_matches(spec["selector"], labels):
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels", f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
        causes += _pod_spec_causes(template.get("spec"), "spec.template.spec")
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            causes.append(("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
    elif rtype.group == "batch" and kind == "Job":
        template = (spec or {}).get("template") or {}
        causes += _pod_spec_causes(template.get("spec"), "spec.template.spec")
    elif rtype.group == "" and kind == "Pod":
        causes += _pod_spec_causes(spec, "spec")
    elif rtype.group == "" and kind in ("ConfigMap", "Secret"):
        for section in ("data", "binaryData", "stringData"):
            for key in obj.get(section) or {}:
                if not _CONFIG_KEY.match(key) or len(key) > 253:
                    causes.append(("FieldValueInvalid", f"{section}[{key}]", f"Invalid value: {_quote(key)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
    elif rtype.group == "coordination.k8s.io" and kind == "Lease" and isinstance(spec, dict):
        duration, transitions = spec.get("leaseDurationSeconds"), spec.get("leaseTransitions")
        if isinstance(duration, int) and duration <= 0:
            causes.append(("FieldValueInvalid", "spec.leaseDurationSeconds", f"Invalid value: {duration}: must be greater than 0"))
        if isinstance(transitions, int) and transitions < 0:
            causes.append(("FieldValueInvalid", "spec.leaseTransitions", f"Invalid value: {transitions}: must be greater than or equal to 0"))
    elif rtype.group == "" and kind == "Service":
        spec = spec or {}
        if spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
            causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    return causes


def _go_map(labels: dict[str, Any]) -> str:
    if not labels:
        return "map[string]string(nil)"
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def validate(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid when ``obj`` (with a name already chosen) would be refused."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    causes = name_causes(rtype.kind, name) + metadata_causes(meta) + spec_causes(rtype, obj)
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)


_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
})
_SPEC_STATUS = frozenset({"spec", "status"})


def unknown_fields(rtype: ResourceType, obj: dict[str, Any]) -> list[str]:
    """Top-level and metadata fields the kind does not declare (custom resources: per the
    CRD schema's root properties, unless it preserves unknown fields)."""
    allowed: frozenset[str] | None
    if rtype.custom:
        schema = next(iter(rtype.schemas.values()), None) if rtype.schemas else None
        api_version = str(obj.get("apiVersion", ""))
        schema = rtype.schemas.get(api_version.rsplit("/", 1)[-1], schema)
        if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields") or "properties" not in schema:
            allowed = None
        else:
            allowed = frozenset(schema["properties"])
    else:
        # built-in kinds: the properties of the kind's schema in the recorded OpenAPI
        version = str(obj.get("apiVersion", "")).rsplit("/", 1)[-1]
        allowed = builtin_openapi.top_level_fields(rtype.group, version, rtype.kind) or _SPEC_STATUS
    out = []
    if allowed is not None:
        out += [key for key in obj if key not in allowed and key not in ("apiVersion", "kind", "metadata")]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out += [f"metadata.{key}" for key in meta if key not in _META_FIELDS]
    return out


#: fields a real server refuses to change after creation, by (group, kind)
_IMMUTABLE: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("apps", "Deployment"): (("spec", "selector"),),
    ("apps", "StatefulSet"): (("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates")),
    ("apps", "DaemonSet"): (("spec", "selector"),),
    ("apps", "ReplicaSet"): (("spec", "selector"),),
    ("batch", "Job"): (("spec", "selector"), ("spec", "template")),
    ("", "Service"): (("spec", "clusterIP"),),
    ("", "PersistentVolumeClaim"): (("spec", "storageClassName"), ("spec", "volumeName")),
    ("rbac.authorization.k8s.io", "RoleBinding"): (("roleRef",),),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (("roleRef",),),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (("spec", "scope"),),
}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def validate_immutable(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise 422 Invalid ``field is immutable`` for changes the real server refuses."""
    causes: list[Cause] = []
    for path in _IMMUTABLE.get((rtype.group, rtype.kind), ()) if not rtype.custom else ():
        before, after = _dig(old, path), _dig(new, path)
        if rtype.kind == "Service" and (after in (None, "") or before in (None, "")):
            continue
        if before != after:
            causes.append(("FieldValueInvalid", ".".join(path), f"Invalid value: {_quote(after)}: field is immutable"))
    if rtype.group == "" and rtype.kind in ("ConfigMap", "Secret") and old.get("immutable") is True:
        for section in ("data", "binaryData"):
            if (old.get(section) or {}) != (new.get(section) or {}):
                causes.append(("FieldValueForbidden", section, "Forbidden: field is immutable when `immutable` is set"))
        if new.get("immutable") is not True:
            causes.append(("FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` is set"))
    if causes:
        name = str((new.get("metadata") or {}).get("name") or "")
        raise invalid(rtype.kind, rtype.group, name, causes)
