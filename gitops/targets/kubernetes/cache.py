"""A watch-based cache of owned objects: warm reads cost no request, drift raises an event.

Two layers, so that a process with a thousand targets on one cluster (``gitops
controller``) keeps one watch per kind, not one per kind and inventory:

* :class:`Informers`, shared by the targets of one API server connection (see
  :mod:`.shared`): stores kept current by watches. A store holds every object of one
  resource that carries one label (``applyset.kubernetes.io/part-of`` for members,
  ``applyset.kubernetes.io/id`` for inventory parents), across all namespaces when RBAC
  allows it (one LIST and one WATCH per kind), else per namespace, indexed by the
  label's value so one inventory's members are read without scanning the others'. A
  store is filled by one LIST, then kept current by a WATCH from that list's
  resourceVersion in a daemon thread; an expired watch (410 Gone) or a broken
  connection makes the store unsynced until it is listed again, so a read never sees a
  store that may have missed events.
* :class:`WatchCache`, one per target: reads ``label=value`` from the stores and is told
  of changes to the values it read. Its target records its own writes
  (:meth:`WatchCache.record`, :meth:`WatchCache.forget`): they are visible at once, their
  watch events are not reported to it as drift, and other caches reading those objects
  are told at once. Any other change to what the differ compares (status and server
  fields excluded) calls the cache's ``on_drift``. No per-inventory state is shared.

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

__all__ = [
    "DriftEvent",
    "DriftHandler",
    "Informers",
    "WatchCache",
    "label_selector",
    "list_objects",
    "matches",
]

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
    client: KubeClient, resource: APIResource, namespace: str, selector: str | None,
    field_selector: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """LIST a collection (following ``continue`` tokens); returns items and resourceVersion.

    Items get the ``apiVersion`` and ``kind`` a LIST leaves out.
    """
    items: list[dict[str, Any]] = []
    query: list[tuple[str, str]] = [("labelSelector", selector)] if selector else []
    if field_selector:
        query.append(("fieldSelector", field_selector))
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


def label_selector(selector: str) -> tuple[str, str]:
    """``(label, value)`` of an equality selector on one label (``k=v``), the only kind
    :meth:`WatchCache.read` serves; ValueError for anything else."""
    label, sep, value = selector.partition("=")
    if not sep or not label or "," in selector or value.startswith("="):
        raise ValueError(f"the watch cache serves one-label equality selectors, not {selector!r}")
    return label, value


def _value(obj: dict[str, Any] | None, label: str) -> str | None:
    """The value of ``label`` on ``obj`` (None: no object, or not labelled)."""
    if obj is None:
        return None
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(label)
    return None if value is None else str(value)


def _changes(label: str, old: dict[str, Any] | None, new: dict[str, Any] | None
             ) -> list[tuple[str, Change]]:
    """How an object's change looks to the readers of each value of ``label``."""
    before, after = _value(old, label), _value(new, label)
    out: list[tuple[str, Change]] = []
    if before is not None and before != after:
        out.append((before, "deleted"))
    if after is not None:
        if before != after:
            out.append((after, "added"))
        elif old is not None and new is not None and _compared(old) != _compared(new):
            out.append((after, "modified"))
    return out


@dataclass(eq=False)
class _Store:
    """Every object of one resource (in one namespace, or all) that carries ``label``,
    indexed by the label's value. Guarded by ``lock``."""

    resource: APIResource
    namespace: str  # "" for all namespaces (or a cluster-scoped resource)
    label: str
    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    by_value: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    #: label value -> the caches that read it (and are told about its changes)
    readers: dict[str, set[WatchCache]] = field(default_factory=dict)
    version: str = ""
    synced: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    sync_lock: threading.Lock = field(default_factory=threading.Lock)
    stream: WatchStream | None = None
    thread: threading.Thread | None = None

    def put(self, item: tuple[str, str], obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """Store ``obj`` (None, or an object without the label: drop the item); the old one."""
        old = self.items.pop(item, None)
        before = _value(old, self.label)
        if before is not None:
            members = self.by_value.get(before)
            if members is not None:
                members.pop(item, None)
                if not members:
                    del self.by_value[before]
        after = _value(obj, self.label)
        if obj is not None and after is not None:
            self.items[item] = obj
            self.by_value.setdefault(after, {})[item] = obj
        return old

    def replace(self, items: dict[tuple[str, str], dict[str, Any]]) -> dict[
            tuple[str, str], dict[str, Any]]:
        """Make ``items`` the whole content (a relist); the old content."""
        old = self.items
        self.items, self.by_value = {}, {}
        for item, obj in items.items():
            self.put(item, obj)
        return old

    def told(self, changes: list[tuple[str, Change]], exclude: WatchCache | None = None
             ) -> list[tuple[WatchCache, Change]]:
        """Who is to be told of ``changes``: each reader of a changed value, but ``exclude``."""
        return [(reader, change) for value, change in changes
                for reader in self.readers.get(value, ()) if reader is not exclude]


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Informers:
    """Stores of labelled objects kept current by watches, shared by the targets of one
    API server connection (see the module docstring). Thread-safe."""

    def __init__(self, client: KubeClient, *, watch_timeout: int = 300,
                 max_backoff: float = 30.0) -> None:
        self._client = client
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str, str], _Store] = {}
        self._by_resource: dict[APIResource, list[_Store]] = {}  # the same stores, by resource
        self._namespaced_only: set[str] = set()  # collections we may not watch cluster-wide
        self._closed = threading.Event()

    # -- stores ---------------------------------------------------------------------------

    def store(
        self, resource: APIResource, namespace: str, label: str, *, cluster_wide: bool = True
    ) -> _Store:
        """The synced store of ``resource``'s objects labelled ``label`` that covers
        ``namespace`` (the first call LISTs it and starts its watch). Raises what the LIST
        raises."""
        collection = resource.collection()
        wide = cluster_wide and collection not in self._namespaced_only
        scope = "" if wide or not resource.namespaced else namespace
        with self._lock:
            store = self._stores.get((collection, scope, label))
            if store is None:
                store = _Store(resource, scope, label)
                self._stores[(collection, scope, label)] = store
                self._by_resource.setdefault(resource, []).append(store)
        try:
            self._sync(store)
        except StatusError as exc:
            if exc.code != 403 or not (scope == "" and resource.namespaced and namespace):
                raise
            with self._lock:  # not allowed across namespaces: one store per namespace
                self._namespaced_only.add(collection)
                gone = self._stores.pop((collection, scope, label), None)
                same = self._by_resource.get(resource, [])
                if gone in same:
                    same.remove(gone)
            return self.store(resource, namespace, label, cluster_wide=False)
        return store

    def stores_of(self, resource: APIResource, namespace: str) -> list[_Store]:
        """The stores of ``resource`` that cover ``namespace``."""
        with self._lock:
            return [s for s in self._by_resource.get(resource, ())
                    if s.namespace in ("", namespace)]

    def get(self, resource: APIResource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, when a synced store holds it (None proves nothing)."""
        for store in self.stores_of(resource, namespace):
            with store.lock:
                found = store.items.get((namespace, name)) if store.synced else None
            if found is not None:
                return found
        return None

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
        items, version = list_objects(self._client, store.resource, store.namespace,
                                      store.label)
        fresh = {_ident(o): o for o in items}
        with store.lock:
            old = store.replace(fresh)
            store.version, store.synced = version, True
            told = [(item, reader, change) for item in sorted(old.keys() | fresh.keys())
                    for reader, change in store.told(
                        _changes(store.label, old.get(item), fresh.get(item)))]
        for item, reader, change in told:  # after a gap: what changed meanwhile
            reader.deliver(store.resource, item, change, _version(fresh.get(item)), wait=True)

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
        query = [("labelSelector", store.label), ("resourceVersion", store.version),
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
        if kind == "ERROR":
            raise _Expired() if obj.get("code") == 410 else ConnectionFailed(
                f"watch of {store.resource.group_resource}: {obj.get('message', obj)}",
                sent=True, url=self._client.url,
            )
        version = _version(obj)
        if kind == "BOOKMARK":
            store.version = version or store.version
            return
        obj.setdefault("apiVersion", store.resource.api_version)
        obj.setdefault("kind", store.resource.kind)
        item = _ident(obj)
        told: list[tuple[WatchCache, Change]] = []
        with store.lock:
            old = store.items.get(item)
            if kind == "DELETED":
                if old is not None:
                    store.put(item, None)
                    told = store.told(_changes(store.label, old, None))
            elif old is None or not _older(obj, old):  # else: the target recorded a newer one
                store.put(item, obj)
                told = store.told(_changes(store.label, old, obj))
            if version:
                store.version = version
        for reader, change in told:
            reader.deliver(store.resource, item, change, version, wait=True)


class WatchCache:
    """One target's view of the :class:`Informers`: reads, its own writes, its drift events.

    ``on_drift`` is called for changes, by anyone but this cache's target, to the objects
    of the label values it read. Close it to stop being told; the informers stay.
    """

    def __init__(self, informers: Informers, on_drift: DriftHandler) -> None:
        self._informers = informers
        self._on_drift = on_drift
        self._reading: set[tuple[_Store, str]] = set()
        self._reading_lock = threading.Lock()
        self._own_versions: deque[str] = deque(maxlen=_REMEMBERED)
        self._own_version_set: set[str] = set()
        self._own_deletes: dict[tuple[str, str, str], None] = {}  # an ordered set
        self._writes = threading.Condition()
        self._in_flight: Counter[tuple[str, str, str]] = Counter()
        self._closed = False

    # -- reads ---------------------------------------------------------------------------

    def read(
        self, resource: APIResource, namespace: str, selector: str, *, cluster_wide: bool = True
    ) -> list[dict[str, Any]]:
        """The objects of ``resource`` in ``namespace`` (all if "") matching ``selector``
        (``label=value``), whose changes this cache reports from now on.

        The first read of a collection by any cache of the informers LISTs it and starts
        its watch; later reads cost no request while the watch is healthy. Raises what
        the LIST raises.
        """
        label, value = label_selector(selector)
        store = self._informers.store(resource, namespace, label, cluster_wide=cluster_wide)
        with self._reading_lock:
            if not self._closed and (store, value) not in self._reading:
                self._reading.add((store, value))
                with store.lock:
                    store.readers.setdefault(value, set()).add(self)
        with store.lock:
            items = list(store.by_value.get(value, {}).values())
        if namespace and resource.namespaced and not store.namespace:
            items = [o for o in items if (o.get("metadata") or {}).get("namespace") == namespace]
        return items

    def get(
        self, resource: APIResource, namespace: str, name: str
    ) -> tuple[bool, dict[str, Any] | None]:
        """``(True, object)`` when a synced store holds the object, else (False, None)."""
        found = self._informers.get(resource, namespace, name)
        # absent from a store proves nothing: the object may simply not carry the label
        return (True, found) if found is not None else (False, None)

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
        """Make an object the target just wrote visible, and its watch event not drift
        (other readers of it are told of the change at once)."""
        metadata = obj.get("metadata") or {}
        version = str(metadata.get("resourceVersion") or "")
        if version:
            with self._writes:
                if len(self._own_versions) == self._own_versions.maxlen:
                    self._own_version_set.discard(self._own_versions[0])
                self._own_versions.append(version)
                self._own_version_set.add(version)
        item = _ident(obj)
        for store in self._informers.stores_of(resource, item[0]):
            with store.lock:
                old = store.items.get(item)
                if old is not None and _older(obj, old):
                    continue
                store.put(item, obj)
                told = store.told(_changes(store.label, old, obj), exclude=self)
            for reader, change in told:
                reader.deliver(resource, item, change, version, wait=False)

    def forget(self, resource: APIResource, namespace: str, name: str) -> None:
        """The target deleted this object: drop it, and do not report its deletion."""
        with self._writes:
            self._own_deletes[(resource.collection(), namespace, name)] = None
            if len(self._own_deletes) > _REMEMBERED:  # deletions of objects no store held
                del self._own_deletes[next(iter(self._own_deletes))]
        for store in self._informers.stores_of(resource, namespace):
            with store.lock:
                old = store.put((namespace, name), None)
                told = store.told(_changes(store.label, old, None), exclude=self)
            for reader, change in told:
                reader.deliver(resource, (namespace, name), change, "", wait=False)

    def close(self) -> None:
        """Stop reporting drift (the informers' watches go on for other caches). Idempotent."""
        with self._reading_lock:
            self._closed = True
            reading, self._reading = self._reading, set()
        for store, value in reading:
            with store.lock:
                readers = store.readers.get(value)
                if readers is not None:
                    readers.discard(self)
                    if not readers:
                        del store.readers[value]

    # -- drift -------------------------------------------------------------------------------

    def deliver(self, resource: APIResource, item: tuple[str, str], change: Change,
                version: str, *, wait: bool) -> None:
        """A change to an object this cache reads: report it unless it is this target's own
        write (``wait``: first let a write of that object in flight be recorded)."""
        own = (resource.collection(), *item)
        with self._writes:  # the event may arrive before the write's response is recorded
            if wait:
                self._writes.wait_for(lambda: own not in self._in_flight, timeout=30)
            if change == "deleted":
                if own in self._own_deletes:
                    del self._own_deletes[own]
                    return
            elif version and version in self._own_version_set:
                return
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


def _version(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
