"""The Kubernetes target (``k8s:``): server-side apply, an ApplySet inventory, LIST-based reads.

How the engine's calls map to requests:

* ``read_inventory(name)``: one GET of the ApplySet parent (see :mod:`.applyset`); it
  also *binds* the target to that inventory, whose members ``live`` then LISTs by label.
* ``own(resource, name)``: no request; labels the desired object as a member, so the
  engine's diff shows a missing label and the apply adds it.
* ``live(keys)``: one LIST per kind and namespace, label-filtered to the inventory's
  members when every key asked for in that scope is one (else unfiltered, to see
  objects to adopt), never one GET per object. With the watch cache, none at all.
  Objects are read at the version this field manager last applied them at (from
  ``managedFields``; one more LIST per other version in use), else the preferred one:
  ``live`` needs nothing from an earlier call, and works on a fresh target.
* ``owners(keys, name)``: no request after ``live``; from the ``part-of`` labels it saw.
* ``apply(resource, dry_run)``: one server-side apply PATCH (``dryRun=All`` for
  validation); ``delete(key)``: one DELETE with a propagation policy and the uid the
  plan saw as precondition.
* ``write_inventory(name, inventory)``: one POST (create) or PUT (with the
  resourceVersion read) of the parent: a compare-and-swap (see :mod:`.parents`).

Objects labelled as members of another ApplySet are refused (ConflictError) unless
``adopt=True``; unlabelled objects are adopted. This module orchestrates; requests,
discovery, apply bodies, the inventory format and the cache live in sibling modules.
It keeps no state a restart would need: everything it must remember is in the cluster.
Every error it raises carries ``url`` (the target's).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Self

from gitops.differs.lists import ChainListTypes, builtin_list_types
from gitops.errors import ApplyError, ConflictError, TargetError
from gitops.health import assess
from gitops.manifests import CRD, crd_kind, crd_kinds, origin_error
from gitops.model import (
    DriftMode,
    DriftPolicy,
    HealthStatus,
    Inventory,
    Resource,
    ResourceKey,
    split_api_version,
)
from gitops.options import PluginOptions, validate_options
from gitops.targets.base import Target
from gitops.targets.kubernetes import http
from gitops.targets.kubernetes.apply import (
    applied_version,
    apply_body,
    apply_query,
    delete_body,
    missing_namespace,
    namespace_manifest,
)
from gitops.targets.kubernetes.applyset import PART_OF_LABEL, ApplySet
from gitops.targets.kubernetes.cache import (
    DriftEvent,
    DriftHandler,
    Informers,
    WatchCache,
    list_objects,
)
from gitops.targets.kubernetes.discovery import APIResource, Discovery
from gitops.targets.kubernetes.errors import (
    StatusError,
    TransientApplyError,
    TransportError,
    object_error,
    secret_values,
)
from gitops.targets.kubernetes.openapi import ServerListTypes
from gitops.targets.kubernetes.options import KubernetesOptions, parse_url
from gitops.targets.kubernetes.parents import CONFIGMAPS, Parents
from gitops.targets.kubernetes.shared import Cluster, open_cluster

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
    :class:`~gitops.targets.kubernetes.options.KubernetesOptions` and validated once,
    from the URL's query and keyword options together (keywords win), or given whole as
    ``options=``. ``api_client`` and ``sleep`` are runtime objects, not options: only the
    constructor takes them. Raises InvalidURLError for a bad URL, option or context,
    TargetError for an unusable kubeconfig. Nothing is sent to the server until the
    first call.
    """

    scheme: ClassVar[str] = "k8s"
    supports_dry_run: ClassVar[bool] = True
    dry_run_needs_prerequisites: ClassVar[bool] = True
    supports_health: ClassVar[bool] = True
    supports_watch: ClassVar[bool] = True
    supports_status: ClassVar[bool] = True
    Options: ClassVar[type[PluginOptions]] = KubernetesOptions

    def __init__(
        self,
        url: str = "k8s:",
        *,
        options: KubernetesOptions | None = None,
        api_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        **keywords: Any,
    ) -> None:
        self.url, from_url = parse_url(url)
        if options is None:
            options = validate_options(KubernetesOptions, self.url, {**from_url, **keywords})
        elif keywords:
            raise TypeError("pass either options= or keyword options, not both")
        self.options: KubernetesOptions = options
        self._context: str | None = None
        # what this process shares per cluster connection (see .shared); an injected
        # ApiClient is the embedder's: nothing is shared then
        self._cluster: Cluster | None = None
        if api_client is None:
            self._cluster = open_cluster(self.url, options)
            api_client, self._context = self._cluster.api_client, self._cluster.context
        self.client = http.KubeClient(
            api_client, url=self.url, timeout=options.timeout,
            connect_timeout=options.connect_timeout,
            unreachable_timeout=options.unreachable_timeout, qps=options.qps,
            burst=options.burst, retries=options.retries, sleep=sleep,
        )
        shared = self._cluster
        self.discovery = (shared.discovery if shared else Discovery(self.client)).view(self.client)
        server_types = shared.list_types if shared else ServerListTypes(self.client)
        self._list_types = ChainListTypes(builtin_list_types(),
                                          server_types.view(self.client, self.discovery))
        self._informers: Informers | None = shared.informers if shared else None
        self._sleep = sleep
        self._applyset: ApplySet | None = None  # the inventory this target is bound to
        self._applysets: dict[str, ApplySet] = {}  # inventory name -> its ApplySet
        self._names: dict[str, str] = {}  # ApplySet id -> inventory name, as far as known
        self._owned: frozenset[ResourceKey] = frozenset()
        self._members: set[str] = set()  # ApplySet ids this target applied members of
        self._seen: dict[ResourceKey, _Seen] = {}
        # the Resource and the health verdict last made of each live object (see _resource)
        self._resources: dict[ResourceKey, Resource] = {}
        self._health: dict[ResourceKey, tuple[dict[str, Any], HealthStatus]] = {}
        self._pending_kinds: set[tuple[str, str]] = set()  # defined by CRDs applied here
        self._namespaces: set[str] = set()  # known to exist
        self._handlers: list[DriftHandler] = []
        self._handlers_lock = threading.Lock()
        self._cache: WatchCache | None = (
            WatchCache(self._watches(), self._drifted) if options.watch else None
        )
        self._parents = Parents(
            self.client, self.url, options.field_manager, cache=lambda: self._cache,
            ensure_namespace=self._ensure_namespace, alive=self._alive,
        )

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """``context`` (from ``k8s://CONTEXT``) and the query's options, as strings."""
        return parse_url(url)[1]

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """The target for ``url`` with options the registry validated."""
        if not isinstance(options, KubernetesOptions):
            raise TypeError(f"expected KubernetesOptions, not {type(options).__name__}")
        return cls(url, options=options)

    # -- what it is connected to -----------------------------------------------------------

    @property
    def context(self) -> str | None:
        """The kubeconfig context in use (the current one resolved); None for an injected
        ``ApiClient`` or the in-cluster service account."""
        return self._context

    @property
    def server(self) -> str:
        """The API server's URL, credential-free (``https://127.0.0.1:6443``)."""
        return self.client.server

    def describe(self) -> dict[str, str]:
        """What a plan header shows: ``{"context": ..., "server": ...}`` (no context when
        there is none). Reads nothing from the server."""
        about = {"context": self._context} if self._context else {}
        return {**about, "server": self.server}

    # -- reads -------------------------------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """The live objects among ``keys``: one LIST per kind and namespace scope.

        Each object is read at the version this target's field manager last applied it
        at, else the server's preferred one; nothing earlier calls left behind is needed.
        """
        found, self._seen = self._read(keys, filtered=True)
        return found

    def _read(
        self, keys: Iterable[ResourceKey], *, filtered: bool
    ) -> tuple[dict[ResourceKey, Resource], dict[ResourceKey, _Seen]]:
        scopes: dict[tuple[str, str, str], list[ResourceKey]] = {}
        for key in dict.fromkeys(keys):
            scopes.setdefault((key.group, key.kind, key.namespace), []).append(key)
        found: dict[ResourceKey, Resource] = {}
        seen: dict[ResourceKey, _Seen] = {}
        # Namespaces first: nothing can exist in a namespace an unfiltered read found absent
        # (a first sync of an application that brings its namespace lists nothing there)
        for (group, kind, namespace), scope_keys in sorted(
                scopes.items(), key=lambda item: (item[0][:2] != ("", "Namespace"), item[0])):
            if namespace and seen.get(ResourceKey("", "Namespace", "", namespace)) is _ABSENT:
                seen.update((key, _ABSENT) for key in scope_keys)
                continue
            api = self._discover(group, kind, None)
            if api is None or api.namespaced != bool(namespace):
                continue  # a kind the server does not serve, or a key in no possible scope
            selector = None
            if filtered and self._applyset is not None and self._owned.issuperset(scope_keys):
                selector = self._applyset.member_selector
            objects = self._read_scope(api, namespace, selector, {k.name for k in scope_keys})
            for key in scope_keys:
                obj = objects.get(key.name)
                if obj is None:
                    if selector is None:
                        seen[key] = _ABSENT  # an unfiltered list proves absence
                    continue
                seen[key] = _seen(obj)
                found[key] = self._resource(key, obj, api)
        return found, seen

    def _resource(self, key: ResourceKey, obj: dict[str, Any], api: APIResource) -> Resource:
        """``obj`` as a Resource; the one returned last time for the same object (from the
        watch cache, never mutated), so the engine knows it unchanged without a diff."""
        last = self._resources.get(key)
        if last is not None and last.manifest is obj:
            return last
        resource = self._resources[key] = Resource(
            key, str(obj.get("apiVersion") or api.api_version), obj)
        return resource

    def _read_scope(
        self, api: APIResource, namespace: str, selector: str | None, names: set[str]
    ) -> dict[str, dict[str, Any]]:
        """The objects named ``names`` in one scope, each at the version it was applied at."""
        objects = {name: obj for obj in self._list(api, namespace, selector, names)
                   if (name := str((obj.get("metadata") or {}).get("name"))) in names}
        moved: dict[str, set[str]] = {}
        for name, obj in objects.items():
            version = applied_version(obj, self.options.field_manager)
            if version and version != api.version:
                moved.setdefault(version, set()).add(name)
        for version, moved_names in sorted(moved.items()):
            other = self.discovery.resolve(api.group, api.kind, version)
            if other is None:
                continue  # no longer served: compare at the preferred version
            for obj in self._list(other, namespace, selector, moved_names):
                name = str((obj.get("metadata") or {}).get("name"))
                if name in moved_names:
                    objects[name] = obj
        return objects

    def _list(
        self, resource: APIResource, namespace: str, selector: str | None, names: set[str]
    ) -> list[dict[str, Any]]:
        """The objects of one scope that match ``selector``, among them those ``names``.

        For a single name the LIST asks for that name alone (``metadata.name`` field
        selector): a cold read of one Namespace does not fetch every Namespace.
        """
        if self._cache is not None and selector is not None:
            return self._cache.read(resource, namespace, selector)
        field = f"metadata.name={next(iter(names))}" if len(names) == 1 else None
        return list_objects(self.client, resource, namespace, selector, field)[0]

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

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> dict[ResourceKey, str]:
        """Which of ``keys`` another inventory owns (``part-of`` another ApplySet).

        Answered from what the last ``live`` read, without a request; keys it did not
        cover are read (one unfiltered LIST per kind and namespace). The owner is named
        by its inventory name when this target knows it, else by its ApplySet ID.
        """
        mine = self._applyset_of(inventory).id
        keys = list(dict.fromkeys(keys))
        unseen = [k for k in keys if k not in self._seen]
        if unseen:
            self._seen.update(self._read(unseen, filtered=False)[1])
        out: dict[ResourceKey, str] = {}
        for key in keys:
            owner = self._seen.get(key, _ABSENT).owner
            if owner and owner != mine:
                out[key] = self._names.get(owner, owner)
        return out

    def lock(self, inventory: str) -> contextlib.AbstractContextManager[None]:
        """No lock is taken: every write of the inventory is a compare-and-swap.

        Two syncs of one inventory may overlap. If both find no inventory, the second to
        write it gets a ConflictError before applying anything; otherwise the loser of a
        write merges the winner's entries into its own (:mod:`.parents`), so every object
        either created stays listed. A lock object in the cluster would cost two writes
        per sync, even a no-op one.
        """
        return contextlib.nullcontext()

    def own(self, resource: Resource, inventory: str) -> Resource:
        """``resource`` labelled as a member of the inventory's ApplySet.

        The engine diffs what this returns, so an object that is not yet a member (made
        by hand, or owned by another inventory) shows the label as a change; applying it
        adopts the object, or fails with ConflictError if another inventory owns it. The
        target remembers nothing of it.
        """
        applyset = self._applyset_of(inventory)
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
            obj = self._get(api, key.namespace, key.name)
            last = self._health.get(key)
            if obj is not None and last is not None and last[0] is obj:
                return last[1]  # the same cached object: the same verdict
            verdict = assess(obj)
            if obj is not None:
                self._health[key] = (obj, verdict)
            return verdict
        except (StatusError, TransportError) as exc:
            log.warning("health of %s unknown: %s", key, exc)
            return HealthStatus.UNKNOWN

    # -- writes ------------------------------------------------------------------------------

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Server-side apply ``resource`` (``dryRun=All`` when ``dry_run``).

        Raises ApplyError naming the resource (with the server's message for a 422),
        ConflictError for a field-manager conflict (``force=false``) or an object owned
        by another inventory, TransientApplyError for throttling, 5xx and read timeouts,
        UnreachableApplyError (an UnreachableError) when the API server cannot be
        reached, TargetAuthenticationError when it refuses the credentials.
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
        except (StatusError, TransportError) as exc:
            raise object_error(exc, key, secrets, url=self.url) from exc
        except (TypeError, ValueError) as exc:  # not JSON-serializable
            raise ApplyError(key, f"manifest cannot be sent as JSON: {exc}", url=self.url) from exc
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
                        "or open the target with create_namespaces=true)", url=self.url,
                    ) from exc
                if dry_run:
                    return None
                self._ensure_namespace(key.namespace)
                return self._send_apply(path, query, body, verb)
            if exc.code == 404 and (key.group, key.kind) in self._pending_kinds:
                raise TransientApplyError(  # established, but not served everywhere yet
                    key, f"{key.group_kind} is not served yet after its CRD was applied",
                    url=self.url,
                ) from exc
            raise

    def _send_apply(
        self, path: str, query: list[tuple[str, str]], body: dict[str, Any], verb: str
    ) -> dict[str, Any]:
        obj = self.client.request("PATCH", path, query=query, body=body,
                                  content_type=http.APPLY_PATCH, retry=False, verb=verb)
        if not isinstance(obj, dict):
            raise TargetError(f"{self.client.server}: PATCH {path}: the answer is not an object",
                              url=self.url)
        return obj

    def _applied(self, resource: Resource, api: APIResource, obj: dict[str, Any]) -> None:
        """Bookkeeping after a real apply: what was seen, versions, cache, new kinds."""
        key = resource.key
        self._seen[key] = _seen(obj)
        part_of = resource.labels.get(PART_OF_LABEL)
        if part_of:
            self._members.add(str(part_of))
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
        try:
            api = self._discover(key.group, key.kind, None)  # any served version deletes it
        except (StatusError, TransportError) as exc:
            raise object_error(exc, key, url=self.url) from exc
        if api is None:
            return False  # the kind is not served: no such object can exist
        seen = self._seen.get(key)
        bound = self._applyset
        if bound is not None and seen is not None and seen.owner not in ("", bound.id):
            raise ConflictError(key, f"not deleted: it is now a member of another ApplySet "
                                f"({PART_OF_LABEL}={seen.owner})", url=self.url)
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
            raise object_error(exc, key, url=self.url) from exc
        except TransportError as exc:
            raise object_error(exc, key, url=self.url) from exc
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
                "not adopted (open the target with adopt=true to take it over)", url=self.url,
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
            except (StatusError, TransportError) as exc:
                raise object_error(exc, res.key, url=self.url) from exc
            if served is None:
                raise origin_error(
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
                                     f"{key.kind}; the server serves {other.api_version}",
                                     url=self.url)
                raise ApplyError(key, f"unknown kind {key.kind} in {resource.api_version}: the "
                                 "API server does not serve it (is its CustomResourceDefinition "
                                 "installed, or in the source?)", url=self.url)
        except (StatusError, TransportError) as exc:
            raise object_error(exc, key, url=self.url) from exc
        if api.namespaced and not key.namespace:
            raise ApplyError(key, f"{key.group_kind} is namespaced: metadata.namespace is "
                             "required", url=self.url)
        if not api.namespaced and key.namespace:
            raise ApplyError(key, f"{key.group_kind} is cluster-scoped: metadata.namespace must "
                             "be empty", url=self.url)
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

        It is also the basis the next ``write_inventory`` compares and swaps against.
        Raises TargetError for a parent that is not a gitops inventory or is corrupt.
        """
        applyset = self._applyset_of(name)
        inventory = self._parents.read(applyset)
        self._bind(applyset, inventory)
        return inventory

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        """Store ``inventory`` in the ApplySet parent, as a compare-and-swap; binds the target.

        Creates an absent parent (POST) or replaces the one last read (PUT with its
        resourceVersion). Losing to another sync: ConflictError if that sync created the
        parent and this target applied nothing yet; else the other sync's entries are
        merged in and the write retried, so nothing either applied is left out.
        """
        applyset = self._applyset_of(name)
        self._parents.write(applyset, inventory, members_applied=applyset.id in self._members)
        self._bind(applyset, inventory)
        if self._cache is not None:
            self._watch_members(applyset, inventory)

    def _alive(self, applyset: ApplySet, keys: Iterable[ResourceKey]) -> set[ResourceKey]:
        """Which of ``keys`` exist as members of ``applyset`` now (LISTs past the cache)."""
        scopes: dict[tuple[str, str, str], set[str]] = {}
        for key in keys:
            scopes.setdefault((key.group, key.kind, key.namespace), set()).add(key.name)
        alive: set[ResourceKey] = set()
        for (group, kind, namespace), names in sorted(scopes.items()):
            api = self._discover(group, kind, None)
            if api is None or api.namespaced != bool(namespace):
                continue
            items = list_objects(self.client, api, namespace, applyset.member_selector)[0]
            alive.update(ResourceKey(group, kind, namespace, str(obj["metadata"]["name"]))
                         for obj in items if (obj.get("metadata") or {}).get("name") in names)
        return alive

    def _watch_members(self, applyset: ApplySet, inventory: Inventory) -> None:
        """Start watching every kind the inventory owns, so drift is seen before a read."""
        assert self._cache is not None
        scopes = {(k.group, k.kind, k.namespace) for k in inventory.entries}
        for group, kind, namespace in sorted(scopes):
            try:
                api = self._discover(group, kind, None)
                if api is not None and api.namespaced == bool(namespace):
                    self._cache.read(api, namespace, applyset.member_selector)
            except (StatusError, TransportError) as exc:  # the next read will retry
                log.info("cannot watch %s yet: %s", kind, exc)

    def read_status(self, inventory: str) -> dict[str, Any] | None:
        """The operator's record of ``inventory``: ConfigMap ``gitops-status-NAME``, or None.

        Kept beside the ApplySet parent (same namespace), in key ``status.json``.
        """
        path = CONFIGMAPS.item(self.options.inventory_namespace, _status_map(inventory))
        try:
            obj = self.client.request("GET", path, verb="get")
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise TargetError(f"reading the status of {inventory}: {exc}", url=self.url) from exc
        except TransportError as exc:
            raise TargetError(f"reading the status of {inventory}: {exc}", url=self.url) from exc
        text = ((obj or {}).get("data") or {}).get(_STATUS_KEY)
        try:
            document = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise TargetError(
                f"ConfigMap {self.options.inventory_namespace}/{_status_map(inventory)}: "
                f"key {_STATUS_KEY} is not a JSON object", url=self.url,
            )
        return document

    def write_status(self, inventory: str, status: Mapping[str, Any]) -> None:
        """Store the operator's record of ``inventory`` (server-side apply of its ConfigMap)."""
        namespace = self.options.inventory_namespace
        name = _status_map(inventory)
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "gitops"}},
            "data": {_STATUS_KEY: json.dumps(dict(status), sort_keys=True)},
        }
        query = [("fieldManager", self.options.field_manager), ("force", "true")]
        try:
            self._ensure_namespace(namespace)
            self.client.request("PATCH", CONFIGMAPS.item(namespace, name), query=query,
                                body=body, content_type=http.APPLY_PATCH, verb="patch")
        except (StatusError, TransportError) as exc:
            raise TargetError(f"writing the status of {inventory}: {exc}", url=self.url) from exc

    def forget(self, inventory: str) -> bool:
        """Delete the ApplySet parent ``gitops-inventory-NAME`` and ConfigMap
        ``gitops-status-NAME`` (an inventory that owns nothing any more)."""
        namespace = self.options.inventory_namespace
        found = False
        for name in (self._applyset_of(inventory).name, _status_map(inventory)):
            try:
                self.client.request("DELETE", CONFIGMAPS.item(namespace, name), verb="delete")
                found = True
            except StatusError as exc:
                if exc.code != 404:
                    raise TargetError(f"deleting the records of {inventory}: {exc}",
                                      url=self.url) from exc
            except TransportError as exc:
                raise TargetError(f"deleting the records of {inventory}: {exc}",
                                  url=self.url) from exc
        return found

    def _applyset_of(self, inventory: str) -> ApplySet:
        applyset = self._applysets.get(inventory)
        if applyset is None:
            applyset = self._applysets[inventory] = ApplySet(
                inventory, self.options.inventory_namespace
            )
            self._names[applyset.id] = inventory
        return applyset

    def _bind(self, applyset: ApplySet, inventory: Inventory | None) -> None:
        """Make ``applyset`` the inventory whose members ``live`` lists by their label."""
        self._applyset = applyset
        self._owned = frozenset(inventory.entries) if inventory is not None else frozenset()

    # -- drift events and lifecycle --------------------------------------------------------------

    def watch(self, handler: DriftHandler) -> Callable[[], None]:
        """Call ``handler(DriftEvent)`` when someone else changes or deletes an owned object.

        Subscribing turns the watch cache on (as ``watch=true`` does): reads of owned
        objects are then served from it. Returns a function that unsubscribes.
        """
        with self._handlers_lock:
            self._handlers.append(handler)
            if self._cache is None:
                self._cache = WatchCache(self._watches(), self._drifted)

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

    def _watches(self) -> Informers:
        """The informers this target's watch cache reads (its own without a shared cluster)."""
        if self._informers is None:
            self._informers = Informers(self.client)
        return self._informers

    def close(self) -> None:
        """Stop reporting drift; the last target of a cluster connection closes it (its
        watches and connections). Idempotent."""
        if self._cache is not None:
            self._cache.close()
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.release()
        elif self._informers is not None:  # its own, over the embedder's ApiClient
            self._informers.close()


def _seen(obj: dict[str, Any]) -> _Seen:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return _Seen(str(labels.get(PART_OF_LABEL) or ""), str(metadata.get("uid") or ""))


_STATUS_KEY = "status.json"


def _status_map(inventory: str) -> str:
    """The ConfigMap holding the operator's record of ``inventory``."""
    return f"gitops-status-{inventory}"
