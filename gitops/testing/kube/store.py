"""Objects, the global resourceVersion counter, and the event log watches read from.

The store is the emulator's etcd: it keeps objects by resource and ``(namespace, name)``,
stamps every write with the next resourceVersion, records ADDED/MODIFIED/DELETED events
in a bounded log (a watch from a version older than the log answers 410 Expired), and
indexes owner references for garbage collection. It knows nothing of HTTP, validation or
API semantics, and hands out deep copies only.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from gitops.testing.kube.jsondata import clone

__all__ = ["Event", "ObjectKey", "Store"]

#: (group, plural, namespace or "", name)
ObjectKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``obj`` as stored after it,
    ``prev`` before it (None for ADDED)."""

    rv: int
    type: str
    key: ObjectKey
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None


class Store:
    """Thread-safe object store; ``history`` bounds the event log watches can resume from."""

    def __init__(self, history: int = 20000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rv = 0
        # (group, plural) -> namespace ("" when cluster-scoped) -> name -> object; nested so a
        # namespaced LIST touches only its namespace, whatever the resource holds elsewhere
        self._objects: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]]] = {}
        self._sorted: dict[tuple[str, str, str], list[str]] = {}  # names in order, rebuilt after an add/remove
        self._events: deque[Event] = deque()
        self._history = history
        self._compacted = 0  # watches must start at or after this resourceVersion
        self._owners: dict[str, set[ObjectKey]] = {}  # owner uid -> dependents
        self._owned_by: dict[ObjectKey, frozenset[str]] = {}
        self.closed = False

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    @property
    def compacted(self) -> int:
        with self.lock:
            return self._compacted

    def get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get((group, plural), {}).get(namespace, {}).get(name)
            return clone(obj) if obj is not None else None

    def exists(self, group: str, plural: str, namespace: str, name: str) -> bool:
        """Whether the object is stored (no copy made)."""
        with self.lock:
            return name in self._objects.get((group, plural), {}).get(namespace, {})

    def peek(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object itself, not a copy: callers must not mutate it (see :meth:`select`)."""
        with self.lock:
            return self._objects.get((group, plural), {}).get(namespace, {}).get(name)

    def _names(self, group: str, plural: str, namespace: str) -> list[str]:
        key = (group, plural, namespace)
        names = self._sorted.get(key)
        if names is None:
            names = self._sorted[key] = sorted(self._objects.get((group, plural), {}).get(namespace, {}))
        return names

    def select(self, group: str, plural: str, namespace: str | None = None, *,
               copy: bool = True) -> list[dict[str, Any]]:
        """Objects of one resource (in one namespace, or all), sorted by namespace and name.

        With ``copy=False`` the stored dicts themselves are returned: callers must not
        mutate them (the store never mutates a stored object in place, it replaces it).
        """
        with self.lock:
            bucket = self._objects.get((group, plural), {})
            namespaces = sorted(bucket) if namespace is None else [namespace] if namespace in bucket else []
            out: list[dict[str, Any]] = []
            for ns in namespaces:
                objects = bucket[ns]
                out.extend(clone(objects[n]) if copy else objects[n] for n in self._names(group, plural, ns))
            return out

    def keys(self) -> list[ObjectKey]:
        with self.lock:
            return [(g, p, ns, n) for (g, p), bucket in self._objects.items() for ns, names in bucket.items() for n in names]

    def in_namespace(self, namespace: str) -> list[ObjectKey]:
        with self.lock:
            return [(g, p, namespace, n) for (g, p), bucket in self._objects.items() for n in bucket.get(namespace, ())]

    def dependents(self, uid: str) -> list[ObjectKey]:
        with self.lock:
            return sorted(self._owners.get(uid, ()))

    def put(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (created or modified) at the next resourceVersion; return a copy."""
        meta = obj["metadata"]
        key: ObjectKey = (group, plural, meta.get("namespace", ""), meta["name"])
        with self.changed:
            bucket = self._objects.setdefault((group, plural), {}).setdefault(key[2], {})
            prev = bucket.get(key[3])
            kind = "MODIFIED" if prev is not None else "ADDED"
            if prev is None:
                self._sorted.pop((group, plural, key[2]), None)
            self._rv += 1
            stored = clone(obj)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            bucket[key[3]] = stored
            self._index_owners(key, stored)
            self._record(Event(self._rv, kind, key, stored, prev))
            return clone(stored)

    def remove(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete an object at the next resourceVersion; return its last state."""
        with self.changed:
            buckets = self._objects.get((group, plural), {})
            stored = buckets.get(namespace, {}).pop(name, None)
            if stored is None:
                return None
            self._sorted.pop((group, plural, namespace), None)
            if not buckets[namespace]:
                del buckets[namespace]
            key: ObjectKey = (group, plural, namespace, name)
            self._index_owners(key, None)
            self._rv += 1
            stored = clone(stored)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            self._record(Event(self._rv, "DELETED", key, stored, stored))
            return clone(stored)

    def _index_owners(self, key: ObjectKey, obj: dict[str, Any] | None) -> None:
        for uid in self._owned_by.pop(key, frozenset()):
            self._owners.get(uid, set()).discard(key)
        if obj is None:
            return
        uids = frozenset(
            str(ref.get("uid")) for ref in obj["metadata"].get("ownerReferences") or [] if isinstance(ref, dict)
        )
        if uids:
            self._owned_by[key] = uids
            for uid in uids:
                self._owners.setdefault(uid, set()).add(key)

    def _record(self, event: Event) -> None:
        self._events.append(event)
        while len(self._events) > self._history:
            self._compacted = self._events.popleft().rv
        self.changed.notify_all()

    def compact(self) -> int:
        """Forget the event log (as etcd compaction does); return the compacted version."""
        with self.changed:
            self._events.clear()
            self._compacted = self._rv
            return self._rv

    def events_after(self, rv: int) -> list[Event]:
        """Events newer than ``rv``, oldest first (scans back from the newest: cheap when caught up)."""
        with self.lock:
            newer: list[Event] = []
            for event in reversed(self._events):
                if event.rv <= rv:
                    break
                newer.append(event)
            newer.reverse()
            return newer

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
