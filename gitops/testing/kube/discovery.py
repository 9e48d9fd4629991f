"""The emulator's API surface: recorded discovery documents plus the kinds CRDs add.

Built-in groups come from the documents under ``data/discovery`` (recorded from a real
cluster, see ``data/PROVENANCE.md``); a served CustomResourceDefinition adds its group,
versions and kinds. This module answers "which resource is this URL about" and renders
the legacy and aggregated (``apidiscovery.k8s.io/v2``) discovery documents. It must never
store objects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from gitops.testing.kube.jsondata import clone

__all__ = ["Discovery", "ResourceType"]

_PACKAGE = "gitops.testing.kube"

#: Groups whose objects carry no ``metadata.generation`` on a real server (an approximation by
#: group: their registry strategies do not set it); the other groups' kinds do.
_NO_GENERATION_GROUPS = frozenset({
    "", "rbac.authorization.k8s.io", "coordination.k8s.io", "storage.k8s.io", "events.k8s.io", "node.k8s.io",
    "scheduling.k8s.io", "certificates.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io",
})


@dataclass(frozen=True)
class ResourceType:
    """One resource (``deployments`` in ``apps``) with everything the server needs about it."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    custom: bool = False
    #: for custom resources: the CRD's ``spec.versions[*].schema.openAPIV3Schema`` by version
    schemas: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: for custom resources: the CRD's ``spec.versions[*].additionalPrinterColumns`` by version
    printer_columns: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        """``apps/deployments``, ``/configmaps``: the key of ``counts_by_resource``."""
        return f"{self.group}/{self.plural}"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def has_generation(self) -> bool:
        return self.custom or self.group not in _NO_GENERATION_GROUPS

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


def _load(name: str) -> dict[str, Any]:
    text = (resources.files(_PACKAGE) / "data" / "discovery" / name).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _file_name(group: str, version: str) -> str:
    return f"api__{version}.json" if not group else f"apis__{group}__{version}.json"


class Discovery:
    """Thread-safe registry of served resources; CRDs add and remove kinds at run time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api = _load("api.json")
        self._groups: list[dict[str, Any]] = _load("apis.json")["groups"]
        # (group, version) -> APIResourceList document
        self._lists: dict[tuple[str, str], dict[str, Any]] = {("", "v1"): _load("api__v1.json")}
        for group in self._groups:
            for version in group["versions"]:
                gv = (group["name"], version["version"])
                self._lists[gv] = _load(_file_name(*gv))
        self._builtin_groups = [g["name"] for g in self._groups]
        self._group_docs: list[dict[str, Any]] = list(self._groups)
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._custom: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {}
        for (group, version), doc in self._lists.items():
            self._index(group, version, doc["resources"], custom=False)

    def _index(self, group: str, version: str, entries: list[dict[str, Any]], *, custom: bool,
               schemas: dict[str, Any] | None = None, columns: tuple[dict[str, Any], ...] = ()) -> None:
        subresources: dict[str, set[str]] = {}
        for entry in entries:
            if "/" in entry["name"]:
                parent, sub = entry["name"].split("/", 1)
                subresources.setdefault(parent, set()).add(sub)
        for entry in entries:
            if "/" in entry["name"]:
                continue
            key = (group, entry["name"])
            old = self._types.get(key)
            versions = tuple(dict.fromkeys((*old.versions, version))) if old else (version,)
            self._types[key] = ResourceType(
                group=group,
                versions=versions,
                plural=entry["name"],
                singular=entry.get("singularName") or entry["kind"].lower(),
                kind=entry["kind"],
                namespaced=bool(entry["namespaced"]),
                verbs=tuple(entry["verbs"]),
                short_names=tuple(entry.get("shortNames", ())),
                categories=tuple(entry.get("categories", ())),
                subresources=frozenset(subresources.get(entry["name"], ())),
                custom=custom,
                schemas={**(old.schemas if old else {}), **(schemas or {})},
                printer_columns={**(old.printer_columns if old else {}), **({version: columns} if custom else {})},
            )

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at ``group/version/plural``, or None."""
        with self._lock:
            rtype = self._types.get((group, plural))
        if rtype is None or version not in rtype.versions:
            return None
        return rtype

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        with self._lock:
            for rtype in self._types.values():
                if rtype.group == group and rtype.kind == kind:
                    return rtype
        return None

    def serves(self, group: str, version: str) -> bool:
        with self._lock:
            return (group, version) in self._lists

    def types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._lists)

    # -- CustomResourceDefinitions -------------------------------------------------------------

    def add_crd(self, crd: dict[str, Any]) -> None:
        """Serve the kinds of an accepted CRD (replacing what an earlier version served)."""
        spec = crd.get("spec") or {}
        group = spec["group"]
        names = spec["names"]
        namespaced = spec.get("scope") == "Namespaced"
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        with self._lock:
            self._remove_crd_locked(crd["metadata"]["name"])
            added: list[tuple[str, str]] = []
            for version in versions:
                entries = _crd_entries(names, namespaced, version)
                gv = (group, version["name"])
                doc = self._lists.setdefault(
                    gv, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version['name']}", "resources": []}
                )
                doc["resources"].extend(entries)
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                columns = tuple(c for c in version.get("additionalPrinterColumns") or () if isinstance(c, dict))
                self._index(group, version["name"], entries, custom=True, schemas={version["name"]: schema} if schema else None,
                            columns=columns)
                added.append(gv)
            self._custom[crd["metadata"]["name"]] = (clone(crd), added)
            self._rebuild_groups_locked()

    def remove_crd(self, name: str) -> None:
        with self._lock:
            self._remove_crd_locked(name)
            self._rebuild_groups_locked()

    def _remove_crd_locked(self, name: str) -> None:
        old = self._custom.pop(name, None)
        if old is None:
            return
        crd, added = old
        plural = crd["spec"]["names"]["plural"]
        for gv in added:
            doc = self._lists.get(gv)
            if doc is None:
                continue
            doc["resources"] = [r for r in doc["resources"] if r["name"].split("/")[0] != plural]
            if not doc["resources"]:
                del self._lists[gv]
        self._types.pop((crd["spec"]["group"], plural), None)

    def _rebuild_groups_locked(self) -> None:
        builtin = [g for g in self._groups if g["name"] in self._builtin_groups]
        custom: dict[str, list[str]] = {}
        for crd, added in self._custom.values():
            ordered = [v["name"] for v in crd["spec"].get("versions") or [] if (crd["spec"]["group"], v["name"]) in added]
            for group, version in added:
                custom.setdefault(group, [])
                if version not in custom[group]:
                    custom[group].append(version)
            # keep the CRD's own version order (storage version first is not required)
            if crd["spec"]["group"] in custom:
                custom[crd["spec"]["group"]].sort(key=_position(ordered))
        extra = []
        for group, versions in sorted(custom.items()):
            if group in self._builtin_groups:
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in _by_priority(versions)]
            extra.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        self._group_docs = builtin + extra

    # -- documents ------------------------------------------------------------------------------

    def api_versions(self) -> dict[str, Any]:
        return clone(self._api)

    def api_group_list(self) -> dict[str, Any]:
        with self._lock:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": clone(self._group_docs)}

    def api_group(self, group: str) -> dict[str, Any] | None:
        for doc in self.api_group_list()["groups"]:
            if doc["name"] == group:
                return {"kind": "APIGroup", "apiVersion": "v1", **doc}
        return None

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._lists.get((group, version))
            return clone(doc) if doc is not None else None

    def aggregated(self, legacy_core: bool) -> dict[str, Any]:
        """``APIGroupDiscoveryList`` (apidiscovery.k8s.io/v2), derived from the legacy documents."""
        if legacy_core:
            groups: list[tuple[str, list[str]]] = [("", ["v1"])]
        else:
            groups = [
                (g["name"], [v["version"] for v in g["versions"]]) for g in self.api_group_list()["groups"]
            ]
        items = []
        for name, versions in groups:
            vdocs = []
            for version in versions:
                doc = self.resource_list(name, version)
                if doc is None:
                    continue
                vdocs.append({"version": version, "resources": _aggregated_resources(doc["resources"]), "freshness": "Current"})
            items.append({"metadata": {"name": name, "creationTimestamp": None}, "versions": vdocs})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def _crd_entries(names: dict[str, Any], namespaced: bool, version: dict[str, Any]) -> list[dict[str, Any]]:
    """The APIResourceList entries one served CRD version adds (the resource and its subresources)."""
    entry: dict[str, Any] = {
        "name": names["plural"],
        "singularName": names.get("singular") or names["kind"].lower(),
        "namespaced": namespaced,
        "kind": names["kind"],
        "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
    }
    for key in ("shortNames", "categories"):
        if names.get(key):
            entry[key] = list(names[key])
    entries = [entry]
    subresources = version.get("subresources") or {}
    if "status" in subresources:
        entries.append({"name": f"{names['plural']}/status", "singularName": "", "namespaced": namespaced,
                        "kind": names["kind"], "verbs": ["get", "patch", "update"]})
    if "scale" in subresources:
        entries.append({"name": f"{names['plural']}/scale", "singularName": "", "namespaced": namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
    return entries


def _position(order: list[str]) -> Callable[[str], int]:
    return lambda v: order.index(v) if v in order else len(order)


def _by_priority(versions: list[str]) -> list[str]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    import re

    def rank(v: str) -> tuple[int, int, int, str]:
        m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
        if not m:
            return (3, 0, 0, v)
        level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
        return (level, -int(m.group(1)), -int(m.group(3) or 0), v)

    return sorted(versions, key=rank)


def _aggregated_resources(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if "/" in entry["name"]:
            continue
        res: dict[str, Any] = {
            "resource": entry["name"],
            "responseKind": {"group": "", "version": "", "kind": entry["kind"]},
            "scope": "Namespaced" if entry["namespaced"] else "Cluster",
            "singularResource": entry.get("singularName") or entry["kind"].lower(),
            "verbs": entry["verbs"],
        }
        for key in ("shortNames", "categories"):
            if entry.get(key):
                res[key] = entry[key]
        out[entry["name"]] = res
    for entry in entries:
        if "/" not in entry["name"]:
            continue
        parent, sub = entry["name"].split("/", 1)
        if parent not in out:
            continue
        kind = {"group": entry.get("group", ""), "version": entry.get("version", ""), "kind": entry["kind"]}
        out[parent].setdefault("subresources", []).append({"subresource": sub, "responseKind": kind, "verbs": entry["verbs"]})
    return list(out.values())
