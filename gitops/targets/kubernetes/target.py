"""The Kubernetes target (``k8s:``): server-side apply, an ApplySet inventory, LIST-based reads.

How the engine's calls map to requests:

* ``read_inventory(name)``: one GET of the ApplySet parent (see :mod:`.applyset`); it
  also *binds* the target to that inventory, whose members ``live`` then LISTs by label.
* ``own(resource, name)``: no request; labels the desired object as a member, so the
  engine's diff shows a missing label and the apply adds it.
* ``live(keys)``: one LIST per kind and namespace, label-filtered to the inventory's
  members when every key asked for in that scope is one (else unfiltered, to see
  objects to adopt), never one GET per object. With the watch cache, none at all.
* ``apply(resource, dry_run)``: one server-side apply PATCH (``dryRun=All`` for
  validation); ``delete(key)``: one DELETE with a propagation policy and the uid the
  plan saw as precondition.
* ``write_inventory(name, inventory)``: one apply of the parent.

Objects labelled as members of another ApplySet are refused (ConflictError) unless
``adopt=True``; unlabelled objects are adopted. This module orchestrates; requests,
discovery, apply bodies, the inventory format and the cache live in sibling modules.
It keeps no state a restart would need: everything it must remember is in the cluster.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, NamedTuple

from gitops.errors import ApplyError, ConflictError, ManifestError, TargetError
from gitops.health import assess
from gitops.manifests import CRD, crd_kind, crd_kinds
from gitops.model import (
    DriftMode,
    DriftPolicy,
    HealthStatus,
    Inventory,
    Resource,
    ResourceKey,
    split_api_version,
)
from gitops.targets.base import Target
from gitops.targets.kubernetes import http
from gitops.targets.kubernetes.apply import (
    apply_body,
    apply_query,
    delete_body,
    missing_namespace,
    namespace_manifest,
)
from gitops.targets.kubernetes.applyset import PART_OF_LABEL, ApplySet
from gitops.targets.kubernetes.cache import DriftEvent, DriftHandler, WatchCache, list_objects
from gitops.targets.kubernetes.discovery import APIResource, Discovery
from gitops.targets.kubernetes.errors import (
    ConnectionFailed,
    StatusError,
    TransientApplyError,
    object_error,
    secret_values,
)
from gitops.targets.kubernetes.openapi import cluster_list_types
from gitops.targets.kubernetes.options import KubernetesOptions, parse_url, validate

__all__ = ["KubernetesTarget"]

log = logging.getLogger("gitops.targets.kubernetes")


class _Seen(NamedTuple):
    """What the last read showed of an object: its ApplySet ("" if none) and uid."""

    owner: str
    uid: str


_ABSENT = _Seen("", "")  # a read that covered the key found no object


class KubernetesTarget(Target):
    """A Kubernetes cluster reached through a kubeconfig context or an ``ApiClient``.

    ``KubernetesTarget("k8s://kind-dev?force=false")``, or
    ``KubernetesTarget(api_client=client, inventory_namespace="ops")`` for an embedder
    holding a configured ``kubernetes.client.ApiClient``. Options are described by
    :class:`~gitops.targets.kubernetes.options.KubernetesOptions`; keyword options win
    over the URL's. Raises InvalidURLError for a bad URL, option or context, TargetError
    for an unusable kubeconfig. Nothing is sent to the server until the first call.
    """

    scheme: ClassVar[str] = "k8s"
    supports_dry_run: ClassVar[bool] = True
    dry_run_needs_prerequisites: ClassVar[bool] = True
    supports_health: ClassVar[bool] = True
    supports_watch: ClassVar[bool] = True

    def __init__(
        self,
        url: str = "k8s:",
        *,
        api_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        self.url, from_url = parse_url(url)
        self.options: KubernetesOptions = validate(self.url, {**from_url, **options})
        self._owns_client = api_client is None
        if api_client is None:
            api_client = http.load_api_client(
                self.url, self.options.kubeconfig, self.options.context
            )
        opts = self.options
        self.client = http.KubeClient(
            api_client, timeout=opts.timeout, connect_timeout=opts.connect_timeout,
            qps=opts.qps, burst=opts.burst, retries=opts.retries, sleep=sleep,
        )
        self.discovery = Discovery(self.client)
        self._list_types = cluster_list_types(self.client, self.discovery)
        self._sleep = sleep
        self._applyset: ApplySet | None = None  # the inventory this target is bound to
        self._applysets: dict[str, ApplySet] = {}
        self._owned: frozenset[ResourceKey] = frozenset()
        self._api_versions: dict[ResourceKey, str] = {}
        self._parent_versions: dict[str, str] = {}  # inventory name -> resourceVersion
        self._seen: dict[ResourceKey, _Seen] = {}
        self._pending_kinds: set[tuple[str, str]] = set()  # defined by CRDs applied here
        self._namespaces: set[str] = set()  # known to exist
        self._handlers: list[DriftHandler] = []
        self._handlers_lock = threading.Lock()
        self._cache: WatchCache | None = (
            WatchCache(self.client, self._drifted) if opts.watch else None
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KubernetesTarget:
        """Open ``k8s:`` (current context) or ``k8s://CONTEXT``, with query options."""
        return cls(url, **options)

    # -- reads -------------------------------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """The live objects among ``keys``: one LIST per kind and namespace scope."""
        scopes: dict[tuple[str, str | None, str, str], list[ResourceKey]] = {}
        for key in dict.fromkeys(keys):
            version = split_api_version(self._api_versions.get(key, "/"))[1] or None
            scopes.setdefault((key.group, version, key.kind, key.namespace), []).append(key)
        found: dict[ResourceKey, Resource] = {}
        seen: dict[ResourceKey, _Seen] = {}
        for (group, version, kind, namespace), scope_keys in sorted(
            scopes.items(), key=lambda item: tuple(p or "" for p in item[0])
        ):
            resource = self._discover(group, kind, version)
            if resource is None or resource.namespaced != bool(namespace):
                continue  # a kind the server does not serve, or a key in no possible scope
            selector = None
            if self._applyset is not None and all(k in self._owned for k in scope_keys):
                selector = self._applyset.member_selector
            items = self._list(resource, namespace, selector)
            by_name = {str((o.get("metadata") or {}).get("name")): o for o in items}
            for key in scope_keys:
                obj = by_name.get(key.name)
                if obj is None:
                    if selector is None:
                        seen[key] = _ABSENT  # an unfiltered list proves absence
                    continue
                seen[key] = _seen(obj)
                found[key] = Resource(key, str(obj.get("apiVersion") or resource.api_version), obj)
        self._seen = seen
        return found

    def _list(
        self, resource: APIResource, namespace: str, selector: str | None
    ) -> list[dict[str, Any]]:
        if self._cache is not None and selector is not None:
            return self._cache.read(resource, namespace, selector)
        return list_objects(self.client, resource, namespace, selector)[0]

    def _get(self, resource: APIResource, namespace: str, name: str) -> dict[str, Any] | None:
        if self._cache is not None:
            covered, obj = self._cache.get(resource, namespace, name)
            if covered:
                return obj
        try:
            obj = self.client.request("GET", resource.item(namespace, name), verb="get")
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    def own(self, resource: Resource, inventory: str) -> Resource:
        """``resource`` labelled as a member of the inventory's ApplySet.

        The engine diffs what this returns, so an object that is not yet a member (made
        by hand, or owned by another inventory) shows the label as a change; applying it
        adopts the object, or fails with ConflictError if another inventory owns it. The
        apiVersion is remembered, so that ``live`` reads the object at that version.
        """
        self._api_versions[resource.key] = resource.api_version
        applyset = self._applysets.get(inventory)
        if applyset is None:
            applyset = self._applysets[inventory] = ApplySet(
                inventory, self.options.inventory_namespace
            )
        if resource.labels.get(PART_OF_LABEL) == applyset.id:
            return resource
        manifest = dict(resource.manifest)
        metadata = dict(manifest.get("metadata") or {})
        metadata["labels"] = {**(metadata.get("labels") or {}), PART_OF_LABEL: applyset.id}
        manifest["metadata"] = metadata
        return Resource(resource.key, resource.api_version, manifest, resource.origin)

    def drift_policy(self) -> DriftPolicy:
        """Compare under the target's field manager: a field its last server-side apply
        owns (``metadata.managedFields``) and the source no longer declares is drift (the
        next apply removes it); defaults and other managers' fields are not. Lists merge
        by key where the schema says so (built-in table, else the server's OpenAPI v3)."""
        return DriftPolicy(DriftMode.MANAGED, field_manager=self.options.field_manager,
                           list_types=self._list_types)

    def is_namespaced(self, group: str, kind: str) -> bool | None:
        """From discovery; None for a kind the server does not serve (yet)."""
        resource = self._discover(group, kind, None)
        return None if resource is None else resource.namespaced

    def health(self, resource: Resource) -> HealthStatus:
        """kstatus-like health of the live object (Unknown when it cannot be read)."""
        key = resource.key
        try:
            api = self._discover(key.group, key.kind, split_api_version(resource.api_version)[1])
            if api is None:
                return HealthStatus.MISSING
            return assess(self._get(api, key.namespace, key.name))
        except (StatusError, ConnectionFailed) as exc:
            log.warning("health of %s unknown: %s", key, exc)
            return HealthStatus.UNKNOWN

    # -- writes ------------------------------------------------------------------------------

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Server-side apply ``resource`` (``dryRun=All`` when ``dry_run``).

        Raises ApplyError naming the resource (with the server's message for a 422),
        ConflictError for a field-manager conflict (``force=false``) or an object owned
        by another inventory, TransientApplyError for throttling, 5xx and timeouts.
        """
        key = resource.key
        secrets = secret_values(resource)
        api = self._resource_for(resource)
        part_of = resource.labels.get(PART_OF_LABEL)
        try:
            if part_of:
                self._check_owner(key, api, str(part_of))
            body = apply_body(resource)
            with self._writing(api, key, dry_run):
                obj = self._patch(api, key, body, dry_run=dry_run)
                if obj is not None and not dry_run:
                    self._applied(resource, api, obj)
        except (StatusError, ConnectionFailed) as exc:
            raise object_error(exc, key, secrets) from exc
        except (TypeError, ValueError) as exc:  # not JSON-serializable
            raise ApplyError(key, f"manifest cannot be sent as JSON: {exc}") from exc
        if obj is None:  # dry run in a namespace that will be created: nothing to validate
            return resource
        return Resource(key, str(obj.get("apiVersion") or resource.api_version), obj,
                        resource.origin)

    def _patch(
        self, api: APIResource, key: ResourceKey, body: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any] | None:
        query = apply_query(self.options, dry_run=dry_run)
        path = api.item(key.namespace, key.name)
        verb = "patch dry-run" if dry_run else "patch"
        try:
            return self._send_apply(path, query, body, verb)
        except StatusError as exc:
            if missing_namespace(exc, key.namespace):
                if not self.options.create_namespaces:
                    raise ApplyError(
                        key, f"namespace {key.namespace!r} does not exist (add it to the source, "
                        "or open the target with create_namespaces=true)"
                    ) from exc
                if dry_run:
                    return None
                self._ensure_namespace(key.namespace)
                return self._send_apply(path, query, body, verb)
            if exc.code == 404 and (key.group, key.kind) in self._pending_kinds:
                raise TransientApplyError(  # established, but not served everywhere yet
                    key, f"{key.group_kind} is not served yet after its CRD was applied"
                ) from exc
            raise

    def _send_apply(
        self, path: str, query: list[tuple[str, str]], body: dict[str, Any], verb: str
    ) -> dict[str, Any]:
        obj = self.client.request("PATCH", path, query=query, body=body,
                                  content_type=http.APPLY_PATCH, retry=False, verb=verb)
        if not isinstance(obj, dict):
            raise TargetError(f"{self.client.server}: PATCH {path}: the answer is not an object")
        return obj

    def _applied(self, resource: Resource, api: APIResource, obj: dict[str, Any]) -> None:
        """Bookkeeping after a real apply: what was seen, versions, cache, new kinds."""
        key = resource.key
        self._seen[key] = _seen(obj)
        self._api_versions[key] = resource.api_version
        if self._cache is not None:
            self._cache.record(api, obj)
        if (key.group, key.kind) == CRD:
            defined = crd_kind(resource.manifest)
            if defined is not None:
                self._pending_kinds.add(defined)
                self.discovery.invalidate(defined[0])
        elif (key.group, key.kind) == ("", "Namespace"):
            self._namespaces.add(key.name)
        log.debug("applied %s", key)

    def delete(self, key: ResourceKey, *, dry_run: bool = False) -> bool:
        """Delete with the configured propagation policy; False if it does not exist.

        Refuses (ConflictError) an object the last read showed in another ApplySet, and
        one replaced since it was read (uid precondition).
        """
        version = split_api_version(self._api_versions.get(key, "/"))[1] or None
        try:
            api = self._discover(key.group, key.kind, version)
        except (StatusError, ConnectionFailed) as exc:
            raise object_error(exc, key) from exc
        if api is None:
            return False  # the kind is not served: no such object can exist
        seen = self._seen.get(key)
        bound = self._applyset
        if bound is not None and seen is not None and seen.owner not in ("", bound.id):
            raise ConflictError(key, f"not deleted: it is now a member of another ApplySet "
                                f"({PART_OF_LABEL}={seen.owner})")
        query = [("dryRun", "All")] if dry_run else []
        body = delete_body(self.options, seen.uid if seen is not None else None)
        try:
            with self._writing(api, key, dry_run):
                self.client.request("DELETE", api.item(key.namespace, key.name), query=query,
                                    body=body, retry=False,
                                    verb="delete dry-run" if dry_run else "delete")
                if not dry_run:
                    self._seen[key] = _ABSENT
                    if self._cache is not None:
                        self._cache.forget(api, key.namespace, key.name)
        except StatusError as exc:
            if exc.code == 404:
                return False
            raise object_error(exc, key) from exc
        except ConnectionFailed as exc:
            raise object_error(exc, key) from exc
        return True

    def _writing(
        self, api: APIResource, key: ResourceKey, dry_run: bool
    ) -> contextlib.AbstractContextManager[None]:
        """The cache's guard around a real write (a no-op without cache or for dry runs)."""
        if self._cache is None or dry_run:
            return contextlib.nullcontext()
        return self._cache.writing(api, key.namespace, key.name)

    # -- ownership, kinds and namespaces ---------------------------------------------------------

    def _check_owner(self, key: ResourceKey, api: APIResource, part_of: str) -> None:
        """Refuse an object labelled as another ApplySet's member, unless adopting."""
        seen = self._seen.get(key)
        if seen is None:  # not covered by the last read: look at it
            obj = self._get(api, key.namespace, key.name)
            seen = _ABSENT if obj is None else _seen(obj)
            self._seen[key] = seen
        if seen.owner and seen.owner != part_of and not self.options.adopt:
            raise ConflictError(
                key, f"owned by another inventory ({PART_OF_LABEL}={seen.owner}; find it with "
                f"`kubectl get configmaps -A -l applyset.kubernetes.io/id={seen.owner}`); "
                "not adopted (open the target with adopt=true to take it over)"
            )

    def check(self, resources: Sequence[Resource]) -> None:
        """Refuse a kind the server does not serve (unless a CRD in ``resources`` defines it).

        Discovery is cached, so this costs at most one discovery request per group-version
        that the following reads would not already make.
        """
        defined = crd_kinds(resources)
        seen: set[tuple[str, str]] = set()
        for res in resources:
            group, _ = split_api_version(res.api_version)
            if (res.api_version, res.kind) in seen or (group, res.kind) in defined:
                continue
            seen.add((res.api_version, res.kind))
            try:
                served = self._discover(group, res.kind, split_api_version(res.api_version)[1])
            except (StatusError, ConnectionFailed) as exc:
                raise object_error(exc, res.key) from exc
            if served is None:
                raise ManifestError(
                    res.origin or str(res.key),
                    f"unknown kind {res.kind} in {res.api_version}: {self.url} does not serve "
                    "it (is its CustomResourceDefinition installed, or in the source?)",
                )

    def _discover(self, group: str, kind: str, version: str | None) -> APIResource | None:
        """The resource for a kind, at ``version`` if served, else the preferred one."""
        resource = self.discovery.resolve(group, kind, version)
        if resource is None and version is not None:
            resource = self.discovery.resolve(group, kind, None)
        return resource

    def _resource_for(self, resource: Resource) -> APIResource:
        """The served resource of a manifest, waiting for a kind whose CRD was just applied.

        Raises ApplyError for an unknown kind or version, or a scope mismatch.
        """
        key = resource.key
        group, version = split_api_version(resource.api_version)
        try:
            api = self.discovery.resolve(group, key.kind, version)
            if api is None and (group, key.kind) in self._pending_kinds:
                api = self._wait_for_kind(group, key.kind, version)
            if api is None:
                other = self.discovery.resolve(group, key.kind, None)
                if other is not None:
                    raise ApplyError(key, f"apiVersion {resource.api_version} is not served for "
                                     f"{key.kind}; the server serves {other.api_version}")
                raise ApplyError(key, f"unknown kind {key.kind} in {resource.api_version}: the "
                                 "API server does not serve it (is its CustomResourceDefinition "
                                 "installed, or in the source?)")
        except (StatusError, ConnectionFailed) as exc:
            raise object_error(exc, key) from exc
        if api.namespaced and not key.namespace:
            raise ApplyError(key, f"{key.group_kind} is namespaced: metadata.namespace is required")
        if not api.namespaced and key.namespace:
            raise ApplyError(key, f"{key.group_kind} is cluster-scoped: metadata.namespace must "
                             "be empty")
        return api

    def _wait_for_kind(self, group: str, kind: str, version: str) -> APIResource | None:
        """Poll discovery until a kind defined by a CRD applied here is served."""
        deadline = time.monotonic() + self.options.crd_timeout
        delay = 0.1
        while True:
            self.discovery.invalidate(group)
            api = self.discovery.resolve(group, kind, version)
            if api is not None or time.monotonic() >= deadline:
                return api
            self._sleep(delay)
            delay = min(delay * 2, 1.0)

    def _ensure_namespace(self, name: str) -> None:
        """Create a namespace the target needs (not owned, so never pruned)."""
        if name in self._namespaces:
            return
        body = namespace_manifest(name)
        query = [("fieldManager", self.options.field_manager), ("force", "false")]
        try:
            self.client.request("PATCH", f"/api/v1/namespaces/{name}", query=query, body=body,
                                content_type=http.APPLY_PATCH, verb="patch")
        except StatusError as exc:
            if exc.code != 409:  # exists, with our fields owned by someone else: fine
                raise
        self._namespaces.add(name)
        log.info("created namespace %s", name)

    # -- inventories ---------------------------------------------------------------------------

    def read_inventory(self, name: str) -> Inventory | None:
        """The inventory in the ApplySet parent ``gitops-inventory-NAME``; binds the target.

        Raises TargetError for a parent that is not a gitops inventory or is corrupt.
        """
        applyset = ApplySet(name, self.options.inventory_namespace)
        parent = self._read_parent(applyset)
        inventory = None
        if parent is not None:
            try:
                inventory = applyset.read(parent)
            except (ValueError, OSError, EOFError) as exc:  # JSON, base64, gzip
                raise TargetError(
                    f"{self.client.server}: ConfigMap {applyset.namespace}/{applyset.name} is not a "
                    f"usable gitops inventory: {exc}"
                ) from exc
            metadata = parent.get("metadata") or {}
            self._parent_versions[name] = str(metadata.get("resourceVersion") or "")
        else:
            self._parent_versions.pop(name, None)
        self._bind(applyset, inventory)
        return inventory

    def _read_parent(self, applyset: ApplySet) -> dict[str, Any] | None:
        configmaps = _CONFIGMAPS
        try:
            if self._cache is not None:
                for obj in self._cache.read(configmaps, applyset.namespace,
                                            applyset.parent_selector, cluster_wide=False):
                    if (obj.get("metadata") or {}).get("name") == applyset.name:
                        return obj
                return None
            return self._get(configmaps, applyset.namespace, applyset.name)
        except StatusError as exc:
            raise TargetError(f"cannot read inventory {applyset.inventory!r}: {exc}") from exc

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        """Apply the ApplySet parent holding ``inventory``; binds the target.

        Refuses (ConflictError) when the parent changed since this target read it.
        """
        applyset = ApplySet(name, self.options.inventory_namespace)
        body = applyset.parent(inventory)
        version = self._parent_versions.get(name)
        if version:
            body["metadata"]["resourceVersion"] = version  # optimistic concurrency
        query = [("fieldManager", self.options.field_manager), ("force", "true")]
        path = _CONFIGMAPS.item(applyset.namespace, applyset.name)
        try:
            with self._writing(_CONFIGMAPS, applyset.key, False):
                try:
                    obj = self._apply_parent(path, query, body)
                except StatusError as exc:
                    if not missing_namespace(exc, applyset.namespace):
                        raise
                    self._ensure_namespace(applyset.namespace)
                    obj = self._apply_parent(path, query, body)
                if self._cache is not None:
                    self._cache.record(_CONFIGMAPS, obj)
        except StatusError as exc:
            if exc.code == 409:
                raise ConflictError(
                    applyset.key, f"inventory {name!r} was changed by someone else since it was "
                    "read; plan again"
                ) from exc
            raise TargetError(f"cannot write inventory {name!r}: {exc}") from exc
        self._parent_versions[name] = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        self._bind(applyset, inventory)
        if self._cache is not None:
            self._watch_members(applyset, inventory)

    def _watch_members(self, applyset: ApplySet, inventory: Inventory) -> None:
        """Start watching every kind the inventory owns, so drift is seen before a read."""
        assert self._cache is not None
        scopes = {(k.group, v, k.kind, k.namespace) for k, v in inventory.entries.items()}
        for group, api_version, kind, namespace in sorted(scopes):
            try:
                api = self._discover(group, kind, split_api_version(api_version)[1])
                if api is not None and api.namespaced == bool(namespace):
                    self._cache.read(api, namespace, applyset.member_selector)
            except (StatusError, ConnectionFailed) as exc:  # the next read will retry
                log.info("cannot watch %s yet: %s", kind, exc)

    def _apply_parent(
        self, path: str, query: list[tuple[str, str]], body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self.client.request("PATCH", path, query=query, body=body,
                                  content_type=http.APPLY_PATCH, verb="patch")
        return obj if isinstance(obj, dict) else {}

    def _bind(self, applyset: ApplySet, inventory: Inventory | None) -> None:
        """Make ``applyset`` the inventory whose members ``live`` lists by their label."""
        self._applyset = applyset
        self._owned = frozenset(inventory.entries) if inventory is not None else frozenset()
        if inventory is not None:
            self._api_versions.update(inventory.entries)

    # -- drift events and lifecycle --------------------------------------------------------------

    def watch(self, handler: DriftHandler) -> Callable[[], None]:
        """Call ``handler(DriftEvent)`` when someone else changes or deletes an owned object.

        Subscribing turns the watch cache on (as ``watch=true`` does): reads of owned
        objects are then served from it. Returns a function that unsubscribes.
        """
        with self._handlers_lock:
            self._handlers.append(handler)
            if self._cache is None:
                self._cache = WatchCache(self.client, self._drifted)

        def unsubscribe() -> None:
            with self._handlers_lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)

        return unsubscribe

    def _drifted(self, event: DriftEvent) -> None:
        with self._handlers_lock:
            handlers = list(self._handlers)
        log.info("drift: %s %s", event.key, event.change)
        for handler in handlers:
            handler(event)

    def stats(self) -> dict[str, int]:
        """Requests sent so far, by verb (``list``, ``patch``, ``patch dry-run``, ...)."""
        return dict(self.client.counts)

    def close(self) -> None:
        """Stop the watches and close the connections this target opened. Idempotent."""
        if self._cache is not None:
            self._cache.close()
        if self._owns_client:
            self.client.close()


def _seen(obj: dict[str, Any]) -> _Seen:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return _Seen(str(labels.get(PART_OF_LABEL) or ""), str(metadata.get("uid") or ""))


_CONFIGMAPS = APIResource("", "v1", "ConfigMap", "configmaps", True)
