"""A watch-based cache of owned objects: warm reads cost no request, drift raises an event.

Each store holds the objects of one resource that match one label selector (the
inventory's ownership label), across all namespaces when RBAC allows it (one LIST and
one WATCH per kind), else per namespace. A store is filled by one LIST, then kept
current by a WATCH from that list's resourceVersion in a daemon thread; an expired
watch (410 Gone) or a broken connection makes the store unsynced until it is listed
again, so a read never sees a store that may have missed events. The target records
its own writes (:meth:`WatchCache.record`, :meth:`WatchCache.forget`): they are visible
at once, and the watch events they cause are not reported as drift. Any other change
to what the differ compares (status and server fields excluded) calls ``on_drift``.

Objects in a store are shared, never mutated: an event replaces the whole object.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from gitops.differs.normalize import strip_ignored
from gitops.model import ResourceKey
from gitops.targets.kubernetes.discovery import APIResource
from gitops.targets.kubernetes.errors import ConnectionFailed, StatusError, TransportError
from gitops.targets.kubernetes.http import KubeClient, WatchStream

__all__ = ["DriftEvent", "DriftHandler", "WatchCache", "list_objects", "matches"]

log = logging.getLogger("gitops.targets.kubernetes")

Change = Literal["added", "modified", "deleted"]

_REMEMBERED = 100_000  # own writes remembered, so their watch events are not drift


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """An owned object was changed by someone else (``kubectl edit``, a controller...)."""

    key: ResourceKey
    change: Change


DriftHandler = Callable[[DriftEvent], None]


def list_objects(
    client: KubeClient, resource: APIResource, namespace: str, selector: str | None
) -> tuple[list[dict[str, Any]], str]:
    """LIST a collection (following ``continue`` tokens); returns items and resourceVersion.

    Items get the ``apiVersion`` and ``kind`` a LIST leaves out.
    """
    items: list[dict[str, Any]] = []
    query: list[tuple[str, str]] = [("labelSelector", selector)] if selector else []
    path = resource.collection(namespace)
    token = ""
    while True:
        page = client.request(
            "GET", path, query=[*query, ("continue", token)] if token else query, verb="list"
        )
        for item in page.get("items") or ():
            if isinstance(item, dict):
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                items.append(item)
        metadata = page.get("metadata") or {}
        token = str(metadata.get("continue") or "")
        if not token:
            return items, str(metadata.get("resourceVersion") or "")


def matches(selector: str, labels: dict[str, Any] | None) -> bool:
    """Whether ``labels`` match an equality selector ``k=v[,k=v...]`` (the only kind used)."""
    labels = labels or {}
    for term in selector.split(","):
        name, _, value = term.partition("=")
        if labels.get(name) != value:
            return False
    return True


@dataclass(eq=False)
class _Store:
    resource: APIResource
    namespace: str  # "" for all namespaces (or a cluster-scoped resource)
    selector: str
    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: str = ""
    synced: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    sync_lock: threading.Lock = field(default_factory=threading.Lock)
    stream: WatchStream | None = None
    thread: threading.Thread | None = None


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class WatchCache:
    """Stores of owned objects kept current by watches; see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        on_drift: DriftHandler,
        *,
        watch_timeout: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        self._client = client
        self._on_drift = on_drift
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str, str], _Store] = {}
        self._namespaced_only: set[str] = set()  # collections we may not watch cluster-wide
        self._closed = threading.Event()
        self._own_versions: deque[str] = deque(maxlen=_REMEMBERED)
        self._own_version_set: set[str] = set()
        self._own_deletes: dict[tuple[str, str, str], None] = {}  # an ordered set
        self._writes = threading.Condition()
        self._in_flight: Counter[tuple[str, str, str]] = Counter()

    # -- reads ---------------------------------------------------------------------------

    def read(
        self, resource: APIResource, namespace: str, selector: str, *, cluster_wide: bool = True
    ) -> list[dict[str, Any]]:
        """The objects of ``resource`` in ``namespace`` (all if "") matching ``selector``.

        The first call for a collection LISTs it and starts its watch; later calls cost
        no request while the watch is healthy. Raises what the LIST raises.
        """
        store = self._store(resource, namespace, selector, cluster_wide)
        self._sync(store)
        with store.lock:
            items = list(store.items.values())
        if namespace and resource.namespaced and not store.namespace:
            items = [o for o in items if (o.get("metadata") or {}).get("namespace") == namespace]
        return items

    def get(
        self, resource: APIResource, namespace: str, name: str
    ) -> tuple[bool, dict[str, Any] | None]:
        """``(True, object or None)`` when a synced store covers the object, else (False, None)."""
        with self._lock:
            stores = [s for s in self._stores.values() if s.resource == resource and s.synced
                      and s.namespace in ("", namespace)]
        for store in stores:
            with store.lock:
                found = store.items.get((namespace, name))
            if found is not None:
                return True, found
        # absent from a store proves nothing: the object may simply not carry our label
        return False, None

    # -- the target's own writes ----------------------------------------------------------

    @contextmanager
    def writing(self, resource: APIResource, namespace: str, name: str) -> Iterator[None]:
        """Wrap a write and its :meth:`record`/:meth:`forget`: until both are done, a watch
        event for that object waits, so it is never mistaken for someone else's change."""
        item = (resource.collection(), namespace, name)
        with self._writes:
            self._in_flight[item] += 1
        try:
            yield
        finally:
            with self._writes:
                self._in_flight[item] -= 1
                if not self._in_flight[item]:
                    del self._in_flight[item]
                self._writes.notify_all()

    def record(self, resource: APIResource, obj: dict[str, Any]) -> None:
        """Make an object the target just wrote visible, and its watch event not drift."""
        metadata = obj.get("metadata") or {}
        version = str(metadata.get("resourceVersion") or "")
        if version:
            if len(self._own_versions) == self._own_versions.maxlen:
                self._own_version_set.discard(self._own_versions[0])
            self._own_versions.append(version)
            self._own_version_set.add(version)
        item = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        for store in self._stores_of(resource, item[0]):
            with store.lock:
                if matches(store.selector, metadata.get("labels")):
                    old = store.items.get(item)
                    if old is None or not _older(obj, old):
                        store.items[item] = obj
                else:
                    store.items.pop(item, None)

    def forget(self, resource: APIResource, namespace: str, name: str) -> None:
        """The target deleted this object: drop it, and do not report its deletion."""
        self._own_deletes[(resource.collection(), namespace, name)] = None
        if len(self._own_deletes) > _REMEMBERED:  # deletions of objects no store held
            del self._own_deletes[next(iter(self._own_deletes))]
        for store in self._stores_of(resource, namespace):
            with store.lock:
                store.items.pop((namespace, name), None)

    def close(self) -> None:
        """Stop every watch. Idempotent."""
        self._closed.set()
        with self._lock:
            stores = list(self._stores.values())
        for store in stores:
            if store.stream is not None:
                store.stream.close()
        for store in stores:
            if store.thread is not None and store.thread is not threading.current_thread():
                store.thread.join(timeout=2)

    # -- stores ---------------------------------------------------------------------------

    def _stores_of(self, resource: APIResource, namespace: str) -> list[_Store]:
        with self._lock:
            return [s for s in self._stores.values()
                    if s.resource == resource and s.namespace in ("", namespace)]

    def _store(
        self, resource: APIResource, namespace: str, selector: str, cluster_wide: bool
    ) -> _Store:
        collection = resource.collection()
        wide = cluster_wide and collection not in self._namespaced_only
        scope = "" if wide or not resource.namespaced else namespace
        with self._lock:
            store = self._stores.get((collection, scope, selector))
            if store is None:
                store = _Store(resource, scope, selector)
                self._stores[(collection, scope, selector)] = store
        if not store.synced and scope == "" and resource.namespaced and namespace:
            try:
                self._sync(store)
            except StatusError as exc:
                if exc.code != 403:
                    raise
                with self._lock:  # not allowed across namespaces: one store per namespace
                    self._namespaced_only.add(collection)
                    del self._stores[(collection, scope, selector)]
                return self._store(resource, namespace, selector, cluster_wide=False)
        return store

    def _sync(self, store: _Store) -> None:
        """List the store unless it is synced; start its watch thread once."""
        if store.synced:
            return
        with store.sync_lock:
            if not store.synced:
                self._relist(store)
            if store.thread is None and not self._closed.is_set():
                store.thread = threading.Thread(
                    target=self._watch, args=(store,), daemon=True,
                    name=f"gitops-watch {store.resource.group_resource} {store.namespace}",
                )
                store.thread.start()

    def _relist(self, store: _Store) -> None:
        items, version = list_objects(
            self._client, store.resource, store.namespace, store.selector
        )
        fresh = {_ident(o): o for o in items}
        with store.lock:
            old = store.items
            store.items, store.version, store.synced = fresh, version, True
        if old:  # a relist after a gap: report what changed meanwhile
            self._report(store, old, fresh)

    # -- the watch thread -------------------------------------------------------------------

    def _watch(self, store: _Store) -> None:
        backoff = 0.5
        while not self._closed.is_set():
            try:
                if not store.synced:
                    with store.sync_lock:
                        if not store.synced:
                            self._relist(store)
                self._follow(store)
                backoff = 0.5
            except _Expired:
                store.synced = False
            except (StatusError, TransportError) as exc:
                if self._closed.is_set():
                    return
                store.synced = False
                log.info("watch of %s: %s; listing again in %.1fs",
                         store.resource.group_resource, exc, backoff)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            except Exception:  # never let a watch thread die silently
                log.exception("watch of %s failed", store.resource.group_resource)
                store.synced = False
                self._closed.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def _follow(self, store: _Store) -> None:
        query = [("labelSelector", store.selector), ("resourceVersion", store.version),
                 ("allowWatchBookmarks", "true")]
        stream = self._client.watch(
            store.resource.collection(store.namespace), query, self._watch_timeout
        )
        store.stream = stream
        if self._closed.is_set():
            stream.close()
            return
        for event in stream:
            self._apply(store, event)

    def _apply(self, store: _Store, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        metadata = obj.get("metadata") or {}
        if kind == "ERROR":
            raise _Expired() if obj.get("code") == 410 else ConnectionFailed(
                f"watch of {store.resource.group_resource}: {obj.get('message', obj)}",
                sent=True, url=self._client.url,
            )
        version = str(metadata.get("resourceVersion") or "")
        if kind == "BOOKMARK":
            store.version = version or store.version
            return
        obj.setdefault("apiVersion", store.resource.api_version)
        obj.setdefault("kind", store.resource.kind)
        item = _ident(obj)
        with store.lock:
            old = store.items.get(item)
            if kind == "DELETED":
                changed = store.items.pop(item, None) is not None
            elif old is not None and _older(obj, old):
                changed = False  # the target already recorded a newer version
            else:
                store.items[item] = obj
                changed = old is None or _compared(old) != _compared(obj)
            if version:
                store.version = version
        if changed:
            self._drift(store, item, "deleted" if kind == "DELETED" else
                        "added" if old is None else "modified", version)

    def _report(
        self,
        store: _Store,
        old: dict[tuple[str, str], dict[str, Any]],
        new: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        for item in sorted(old.keys() | new.keys()):
            before, after = old.get(item), new.get(item)
            if after is None:
                self._drift(store, item, "deleted", "")
            elif before is None or _compared(before) != _compared(after):
                version = str((after.get("metadata") or {}).get("resourceVersion") or "")
                self._drift(store, item, "added" if before is None else "modified", version)

    def _drift(self, store: _Store, item: tuple[str, str], change: Change, version: str) -> None:
        own = (store.resource.collection(), *item)
        with self._writes:  # the event may arrive before the write's response is recorded
            self._writes.wait_for(lambda: own not in self._in_flight, timeout=30)
        if change == "deleted":
            if own in self._own_deletes:
                del self._own_deletes[own]
                return
        elif version and version in self._own_version_set:
            return
        resource = store.resource
        key = ResourceKey(resource.group, resource.kind, item[0], item[1])
        try:
            self._on_drift(DriftEvent(key, change))
        except Exception:  # a handler's bug must not stop the watch
            log.exception("drift handler failed for %s", key)


def _ident(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _compared(obj: dict[str, Any]) -> Any:
    """What the differ may compare: the object without status and server-owned fields."""
    return strip_ignored(obj)


def _older(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """True when ``new`` is provably older than ``old`` (integer resourceVersions)."""
    try:
        return int(new["metadata"]["resourceVersion"]) < int(old["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False
