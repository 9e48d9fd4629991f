"""Reading and writing ApplySet parents as compare-and-swaps, so concurrent syncs leak nothing.

Two syncs of one inventory may run at once (a cron job and a person, two replicas).
Each write of the parent is therefore conditional on what the writer last saw:

* a parent that was absent is **created** (POST): if another sync created it first
  (409 AlreadyExists) and this target has applied no member yet, that is a
  :class:`~gitops.errors.ConflictError` ("plan again"): nothing was written, nothing
  leaks. If it has applied members, it merges instead (it must not abandon them);
* an existing parent is **replaced** (PUT) with the resourceVersion last seen: on 409
  Conflict the parent is read again and the writer's inventory merged with what the
  other writer stored (:func:`~.applyset.merge`: its new entries stay, and an entry this
  writer drops stays if its object exists again), then written again; a parent deleted
  meanwhile is created again. Once a write lost, the later writes of the same sync
  (narrowing after the sync) merge the same way even when they win at once: the other
  sync may have created objects of this sync's basis after this one planned.

So an object created under an inventory is always listed by the parent afterwards,
whoever wrote last. This module sends only parent requests; the existence check of
doubtful entries is the target's (``alive``), as are the watch cache and namespaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gitops.errors import ConflictError, TargetAuthenticationError, TargetError
from gitops.model import Inventory, ResourceKey
from gitops.targets.kubernetes.apply import missing_namespace
from gitops.targets.kubernetes.applyset import ApplySet, doubtful, merge
from gitops.targets.kubernetes.cache import WatchCache
from gitops.targets.kubernetes.discovery import APIResource
from gitops.targets.kubernetes.errors import StatusError, Unauthorized
from gitops.targets.kubernetes.http import KubeClient

__all__ = ["CONFIGMAPS", "Parents"]

CONFIGMAPS = APIResource("", "v1", "ConfigMap", "configmaps", True)
_ATTEMPTS = 8  # compare-and-swap rounds before giving up (each one lost to another writer)
_EMPTY = Inventory({}, "")


@dataclass(slots=True)
class _Seen:
    """A parent as last read or written: the object (None: absent) and the plan's basis."""

    live: dict[str, Any] | None
    base: Inventory
    #: another sync wrote the parent since ``base`` was read (a write of ours lost and
    #: merged): every later write merges too, until the next read gives a new basis
    contested: bool = False


class Parents:
    """The ApplySet parents of one target, read and written as compare-and-swaps."""

    def __init__(
        self,
        client: KubeClient,
        url: str,
        field_manager: str,
        *,
        cache: Callable[[], WatchCache | None],
        ensure_namespace: Callable[[str], None],
        alive: Callable[[ApplySet, Iterable[ResourceKey]], set[ResourceKey]],
    ) -> None:
        self._client = client
        self._url = url
        self._field_manager = field_manager
        self._cache = cache
        self._ensure_namespace = ensure_namespace
        self._alive = alive
        self._seen: dict[str, _Seen] = {}
        #: inventory -> the parent object last parsed and what it held (objects from the
        #: watch cache are never mutated: the same object is the same inventory)
        self._parsed: dict[str, tuple[dict[str, Any], Inventory]] = {}

    def read(self, applyset: ApplySet) -> Inventory | None:
        """The inventory the parent holds (None if absent); it becomes the writes' basis.

        Served by the watch cache when there is one (a stale answer only costs a lost
        compare-and-swap). Raises TargetError for a parent that is not a gitops inventory.
        """
        cache = self._cache()
        try:
            if cache is not None:
                parent = next((o for o in cache.read(CONFIGMAPS, applyset.namespace,
                                                     applyset.parent_selector, cluster_wide=False)
                               if (o.get("metadata") or {}).get("name") == applyset.name), None)
            else:
                parent = self._get(applyset)
        except StatusError as exc:
            raise self._error(f"cannot read inventory {applyset.inventory!r}", exc) from exc
        inventory = self._parse(applyset, parent)
        self._seen[applyset.inventory] = _Seen(parent, inventory or _EMPTY)
        return inventory

    def write(self, applyset: ApplySet, inventory: Inventory, *, members_applied: bool) -> None:
        """Store ``inventory`` in the parent, as a compare-and-swap (see the module doc).

        ``members_applied``: this target applied members of the inventory, so losing the
        race to create the parent must merge rather than fail. Raises ConflictError when
        another sync created the parent first (nothing applied yet) or when the parent
        keeps changing; TargetError for any other refusal.
        """
        seen = self._seen.get(applyset.inventory)
        if seen is None:  # never read: the parent as it is now is the basis
            seen = self._fresh(applyset, None)
        wanted = inventory
        if seen.contested and seen.live is not None:
            # the parent holds the other sync's entries, merged in by an earlier write of
            # ours, and it may have re-created objects of our basis we now drop: merge
            # even though this write may win the compare-and-swap at once
            wanted = self._merged(applyset, inventory, seen)
        cache = self._cache()
        guard = (cache.writing(CONFIGMAPS, applyset.namespace, applyset.name)
                 if cache is not None else contextlib.nullcontext())
        with guard:
            for _ in range(_ATTEMPTS):
                try:
                    obj = self._create(applyset, wanted) if seen.live is None else self._replace(
                        applyset, seen.live, wanted)
                except StatusError as exc:
                    if exc.code == 404 and seen.live is not None:  # deleted meanwhile
                        seen.live = None
                        continue
                    if exc.code != 409:
                        raise self._error(f"cannot write inventory {applyset.inventory!r}",
                                          exc) from exc
                    if seen.live is None and not members_applied:
                        raise ConflictError(
                            applyset.key, f"inventory {applyset.inventory!r} was just created by "
                            "another sync; this one applied nothing: plan again", url=self._url,
                        ) from exc
                    seen = self._fresh(applyset, seen.base)
                    seen.contested = True
                    wanted = self._merged(applyset, inventory, seen)
                    continue
                seen.live = obj
                if cache is not None:
                    cache.record(CONFIGMAPS, obj)
                return
        raise ConflictError(applyset.key, f"inventory {applyset.inventory!r} kept changing "
                            f"({_ATTEMPTS} writes lost to other syncs); sync again", url=self._url)

    # -- requests -----------------------------------------------------------------------

    def _get(self, applyset: ApplySet) -> dict[str, Any] | None:
        try:
            obj = self._client.request("GET", CONFIGMAPS.item(applyset.namespace, applyset.name),
                                       verb="get")
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    def _fresh(self, applyset: ApplySet, base: Inventory | None) -> _Seen:
        """The parent read now, past the cache; ``base`` stays (None: it becomes the basis)."""
        try:
            parent = self._get(applyset)
        except StatusError as exc:
            raise self._error(f"cannot read inventory {applyset.inventory!r}", exc) from exc
        current = self._parse(applyset, parent)
        seen = _Seen(parent, base if base is not None else current or _EMPTY)
        self._seen[applyset.inventory] = seen
        return seen

    def _merged(self, applyset: ApplySet, wanted: Inventory, seen: _Seen) -> Inventory:
        current = self._parse(applyset, seen.live) or _EMPTY
        check = doubtful(wanted, seen.base, current)
        return merge(wanted, seen.base, current, self._alive(applyset, check) if check else set())

    def _create(self, applyset: ApplySet, inventory: Inventory) -> dict[str, Any]:
        path = CONFIGMAPS.collection(applyset.namespace)
        query = [("fieldManager", self._field_manager)]
        body = applyset.parent(inventory)
        try:
            obj = self._client.request("POST", path, query=query, body=body, retry=False,
                                       resend=False, verb="create")
        except StatusError as exc:
            if not missing_namespace(exc, applyset.namespace):
                raise
            self._ensure_namespace(applyset.namespace)
            obj = self._client.request("POST", path, query=query, body=body, retry=False,
                                       resend=False, verb="create")
        return obj if isinstance(obj, dict) else {}

    def _replace(
        self, applyset: ApplySet, live: dict[str, Any], inventory: Inventory
    ) -> dict[str, Any]:
        obj = self._client.request(
            "PUT", CONFIGMAPS.item(applyset.namespace, applyset.name),
            query=[("fieldManager", self._field_manager)],
            body=applyset.replacement(live, inventory), verb="update",
        )
        return obj if isinstance(obj, dict) else {}

    def _error(self, doing: str, exc: StatusError) -> TargetError:
        if isinstance(exc, Unauthorized):
            return TargetAuthenticationError(self._url, f"{doing}: {exc}")
        return TargetError(f"{doing}: {exc}", url=self._url)

    def _parse(self, applyset: ApplySet, parent: dict[str, Any] | None) -> Inventory | None:
        if parent is None:
            return None
        last = self._parsed.get(applyset.inventory)
        if last is not None and last[0] is parent:  # the same object (cached): same answer
            return last[1]
        try:
            inventory = applyset.read(parent)
        except (ValueError, OSError, EOFError) as exc:  # JSON, base64, gzip
            raise TargetError(
                f"{self._client.server}: ConfigMap {applyset.namespace}/{applyset.name} is not "
                f"a usable gitops inventory: {exc}", url=self._url,
            ) from exc
        self._parsed[applyset.inventory] = (parent, inventory)
        return inventory
