"""The ``Application`` CustomResourceDefinition (``applications.gitops.dev``), as ``gitops crds`` prints it.

The schema of ``spec`` is derived from the pydantic model
(:func:`gitops.apps.application_json_schema`) and rewritten into the *structural* schema
Kubernetes requires of a ``apiextensions.k8s.io/v1`` CRD: ``$ref`` inlined, ``Optional``
as ``nullable``, free-form plugin options as ``x-kubernetes-preserve-unknown-fields``,
titles and ``additionalProperties: false`` dropped (the server prunes, or with
``fieldValidation=Strict`` refuses, unknown fields anyway). A construct the rewrite does
not know is an error here, not a schema the API server refuses at install time. The
``status`` schema is written here; it describes what the controller writes through the
status subresource. This module builds data only: it never talks to a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from gitops.apps import application_json_schema
from gitops.apps.durations import DURATION_PATTERN
from gitops.apps.spec import GROUP, KIND, VERSION

__all__ = [
    "CRD_NAME",
    "HISTORY_LIMIT",
    "PLURAL",
    "POSITIVE_DURATION_PATTERN",
    "SHORT_NAMES",
    "SINGULAR",
    "all_crds",
    "application_crd",
    "application_schema",
    "crds_yaml",
    "status_schema",
    "yaml_documents",
]

PLURAL = "applications"
SINGULAR = "application"
CRD_NAME = f"{PLURAL}.{GROUP}"
#: not Argo CD's ``app``/``apps``: both CRDs may be installed in one cluster, and a short
#: name two CRDs claim makes ``kubectl get app`` ambiguous (kubectl picks one silently)
SHORT_NAMES = ("gapp", "gapps")
HISTORY_LIMIT = 10

#: a Go duration greater than zero, as every duration of the spec is: no sign, no bare
#: ``0``, at least one digit before each unit (``DURATION_PATTERN`` also lets ``-5m`` and
#: ``s`` through, which the model refuses later)
POSITIVE_DURATION_PATTERN = r"^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"

# JSON Schema keywords that mean the same in a CRD schema and are copied as they are
_KEPT = frozenset({
    "description", "type", "format", "pattern", "minLength", "maxLength", "minimum",
    "maximum", "minItems", "maxItems", "minProperties", "maxProperties", "required", "enum",
    "multipleOf",
})
# pydantic annotations with no meaning for the API server
_DROPPED = frozenset({"title", "examples"})
# Kubernetes' standard Condition reason: CamelCase, what metav1.Condition allows
_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def application_crd() -> dict[str, Any]:
    """The CRD ``applications.gitops.dev``: namespaced, ``v1alpha1`` served and stored,
    the status subresource, and the SYNC, HEALTH, REVISION and AGE printer columns."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "gitops", "app.kubernetes.io/part-of": "gitops"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": application_schema()},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Sync", "type": "string", "jsonPath": ".status.sync",
                     "description": "Synced, OutOfSync or Unknown"},
                    {"name": "Health", "type": "string", "jsonPath": ".status.health",
                     "description": "Healthy, Progressing, Degraded, Missing or Unknown"},
                    {"name": "Revision", "type": "string", "jsonPath": ".status.lastAppliedRevision",
                     "description": "the source revision last applied"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    }


def crds_yaml() -> str:
    """What ``gitops crds`` prints: the CRDs as YAML documents (``kubectl apply --server-side -f -``)."""
    return yaml_documents(all_crds())


def all_crds() -> list[dict[str, Any]]:
    """Every CRD the controller serves: Application, the image automation kinds, then
    ApplicationSet."""
    from gitops.appsets.cluster import applicationset_crd  # they build on this module
    from gitops.images.controller import image_crds

    return [application_crd(), *image_crds(), applicationset_crd()]


def application_schema() -> dict[str, Any]:
    """The CRD's ``openAPIV3Schema``: ``spec`` from the model, ``status`` from :func:`status_schema`.

    Raises ValueError if the model's JSON Schema uses a construct a structural schema
    cannot express (a union of two types, ``patternProperties``...): the model changed
    and this rewrite needs a decision.
    """
    model = application_json_schema()
    defs: Mapping[str, Any] = model.get("$defs", {})
    spec = _structural(model["properties"]["spec"], defs, "spec")
    name = _structural(_resolve(model["properties"]["metadata"], defs)["properties"]["name"], defs,
                       "metadata.name")
    name.pop("description", None)
    return {
        "description": "An application the gitops controller keeps converged: a source, a target, "
                       "and how to reconcile one into the other.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
            "kind": {"type": "string", "description": KIND},
            # only name and generateName may be restricted: the model wants a DNS label
            "metadata": {"type": "object", "properties": {"name": name}},
            "spec": spec,
            "status": status_schema(),
        },
    }


def status_schema() -> dict[str, Any]:
    """The schema of ``status`` as the controller writes it (``gitops.operator.status.AppStatus``).

    Enumerations are closed where the value set is the API (``sync``, ``health``, a
    condition's ``status``, a sync's ``result``) and open where it may grow (``trigger``,
    condition types and reasons), so a newer controller never has its status refused.
    """
    time = {"type": "string", "format": "date-time"}
    return {
        "description": "What the controller observed and did; written through the status subresource.",
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0,
                                   "description": "the metadata.generation this status is about"},
            "sync": {"type": "string", "enum": ["Synced", "OutOfSync", "Unknown"],
                     "description": "whether the target matches the source"},
            "health": {"type": "string",
                       "enum": ["Healthy", "Progressing", "Degraded", "Missing", "Unknown"],
                       "description": "the health of the objects the application owns"},
            "lastAppliedRevision": {"type": "string", "nullable": True,
                                    "description": "the source revision last applied successfully"},
            "lastAttemptedRevision": {"type": "string", "nullable": True,
                                      "description": "the source revision of the last attempt"},
            "lastSyncTime": {**time, "nullable": True,
                             "description": "when the last sync ended"},
            "message": {"type": "string", "nullable": True,
                        "description": "what went wrong, or what the last reconcile did"},
            "suspended": {"type": "boolean",
                          "description": "automation stopped (after a rollback, or gitops suspend)"},
            "resources": {"type": "integer", "minimum": 0,
                          "description": "how many objects the application owns"},
            "counts": {"type": "object",
                       "additionalProperties": {"type": "integer", "minimum": 0},
                       "description": "objects by action of the last sync: created, updated, "
                                      "deleted, unchanged"},
            "conditions": {
                "type": "array",
                "description": "Ready, Reconciling and Stalled, as Kubernetes conditions",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": _condition_schema(),
            },
            "history": {
                "type": "array",
                "maxItems": HISTORY_LIMIT,
                "description": f"the last {HISTORY_LIMIT} syncs, newest last",
                "items": {
                    "type": "object",
                    "required": ["revision", "time", "result"],
                    "properties": {
                        "revision": {"type": "string"},
                        "time": time,
                        "result": {"type": "string", "enum": ["Succeeded", "Failed", "Interrupted"]},
                        "trigger": {"type": "string",
                                    "description": "who started it: start, interval, watch, webhook, "
                                                   "manual, rollback, reload, dependency"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }


def _condition_schema() -> dict[str, Any]:
    """metav1.Condition, with the limits its generated CRD schemas carry."""
    return {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string", "maxLength": 316,
                     "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                                r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": _REASON_PATTERN},
            "message": {"type": "string", "maxLength": 32768},
        },
    }


# -- the rewrite ------------------------------------------------------------------------------


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with a ``$ref`` replaced by its definition (sibling keys win)."""
    ref = node.get("$ref")
    if ref is None:
        return dict(node)
    prefix = "#/$defs/"
    if not isinstance(ref, str) or not ref.startswith(prefix) or ref[len(prefix):] not in defs:
        raise ValueError(f"unresolvable $ref {ref!r} in the Application JSON Schema")
    target = _resolve(defs[ref[len(prefix):]], defs)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _structural(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One JSON Schema node (pydantic's) as a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    union = node.pop("anyOf", None)
    if union is not None:
        branches = [b for b in union if b != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"{where}: a union of types cannot be a structural schema")
        out.update(_structural(branches[0], defs, where))
        if len(branches) < len(union):
            out["nullable"] = True
    for key, value in node.items():
        if key in _DROPPED or key == "const":  # const: apiVersion/kind, checked by the server
            continue
        if key == "properties":
            out["properties"] = {name: _structural(sub, defs, f"{where}.{name}")
                                 for name, sub in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if value is True:  # free-form (plugin options): kept as written
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, Mapping):
                out["additionalProperties"] = _structural(value, defs, f"{where}.*")
            # False: unknown fields are pruned (or refused with fieldValidation=Strict)
        elif key == "default":
            if value not in (None, "", [], {}):  # empty defaults add noise to every object
                out["default"] = copy.deepcopy(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            if not isinstance(value, bool):  # JSON Schema 2020-12 number -> OpenAPI 3.0 flag
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
        elif key == "description":
            out[key] = value.replace("``", "`")
        elif key in _KEPT:
            out[key] = copy.deepcopy(value)
        else:
            raise ValueError(f"{where}: JSON Schema keyword {key!r} has no structural equivalent here")
    if out.get("pattern") == DURATION_PATTERN:
        out["pattern"] = POSITIVE_DURATION_PATTERN
    first: dict[str, Any] = {k: out.pop(k) for k in ("description", "type") if k in out}  # readable YAML
    return {**first, **out}


# -- YAML --------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as ``|`` literals so descriptions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text and not text.endswith((" ", "\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def yaml_documents(documents: Iterable[Mapping[str, Any]]) -> str:
    """``documents`` as one YAML stream, ``---`` between them, keys in the order given."""
    return "---\n".join(
        yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                  default_flow_style=False, width=100)
        for doc in documents
    )
