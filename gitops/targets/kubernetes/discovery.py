"""API discovery: which resource serves a kind, at which version, in which scope.

Group versions are discovered lazily (``/api/v1``, ``/apis``, ``/apis/GROUP/VERSION``):
a plan touching ten kinds in four group versions costs five requests, not the hundred a
full discovery costs. Answers are cached; a miss refreshes the group version once
(at most every ``min_refresh`` seconds, or at once after :meth:`Discovery.invalidate`,
which the target calls when it applies a CustomResourceDefinition), so a CRD applied
earlier in a sync makes its kind usable later in that sync. This module never writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.http import KubeClient

__all__ = ["APIResource", "Discovery", "DiscoveryView"]

_SAFE = ":@!$&'()*+,;="  # RFC 3986 pchar: what client-go leaves unescaped in a name


@dataclass(frozen=True, slots=True)
class APIResource:
    """One served resource: ``apps/v1`` ``Deployment`` is ``deployments``, namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``apps/deployments`` (``/configmaps`` for the core group), as the emulator counts."""
        return f"{self.group}/{self.plural}"

    def collection(self, namespace: str = "") -> str:
        """The URL path of the collection, in ``namespace`` or across all namespaces."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{root}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{root}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        """The URL path of one object."""
        return f"{self.collection(namespace)}/{quote(name, safe=_SAFE)}"


@dataclass(slots=True)
class _GroupVersion:
    fetched_at: float
    kinds: Mapping[str, APIResource] | None  # None: the group version is not served


class Discovery:
    """A lazily filled, thread-safe cache of the server's discovery documents."""

    def __init__(
        self,
        client: KubeClient,
        *,
        min_refresh: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._min_refresh = min_refresh
        self._clock = clock
        self._lock = threading.RLock()
        self._gvs: dict[tuple[str, str], _GroupVersion] = {}
        self._groups: dict[str, list[str]] | None = None  # group -> versions, preferred first
        self._groups_at = 0.0
        self._invalid: set[str] = set()  # groups to refetch on the next miss

    def resolve(self, group: str, kind: str, version: str | None = None, *,
                since: float | None = None, client: KubeClient | None = None
                ) -> APIResource | None:
        """The resource serving ``kind`` in ``group`` (at ``version``, else the preferred one).

        Returns None when the server does not serve it, after one refresh (also when the
        answer was read before ``since``, a time on this object's clock); requests go
        through ``client`` if given. Raises StatusError/ConnectionFailed when discovery
        itself fails.
        """
        via = client or self._client
        with self._lock:
            if version is None:
                version = self.preferred_version(group, since=since, client=via)
                if version is None:
                    return None
            found = self._lookup(group, version, kind, refresh=False, client=via)
            if found is None and self._may_refresh(group, version, since):
                found = self._lookup(group, version, kind, refresh=True, client=via)
            return found

    def preferred_version(self, group: str, *, since: float | None = None,
                          client: KubeClient | None = None) -> str | None:
        """The server's preferred version of ``group`` ("v1" for the core group)."""
        if not group:
            return "v1"
        via = client or self._client
        with self._lock:
            versions = self._group_versions(refresh=False, client=via).get(group)
            if not versions and (group in self._invalid or self._stale(self._groups_at)
                                 or _before(self._groups_at, since)):
                versions = self._group_versions(refresh=True, client=via).get(group)
            return versions[0] if versions else None

    def view(self, client: KubeClient | None = None) -> DiscoveryView:
        """This cache as one more user sees it, asking through ``client`` (default: this
        cache's) when the server must be asked: see :class:`DiscoveryView`."""
        return DiscoveryView(self, self._clock(), client or self._client)

    def invalidate(self, group: str) -> None:
        """Forget what is known about ``group`` (a CRD of that group was just applied)."""
        with self._lock:
            self._invalid.add(group)

    # -- internals --------------------------------------------------------------------------

    def _stale(self, fetched_at: float) -> bool:
        return self._clock() - fetched_at >= self._min_refresh

    def _may_refresh(self, group: str, version: str, since: float | None = None) -> bool:
        known = self._gvs.get((group, version))
        return (known is None or group in self._invalid or self._stale(known.fetched_at)
                or _before(known.fetched_at, since))

    def _lookup(self, group: str, version: str, kind: str, *, refresh: bool,
                client: KubeClient) -> APIResource | None:
        known = self._gvs.get((group, version))
        if known is None or refresh:
            known = self._fetch(group, version, client)
        return known.kinds.get(kind) if known.kinds is not None else None

    def _fetch(self, group: str, version: str, client: KubeClient) -> _GroupVersion:
        if group in self._invalid:
            self._invalid.discard(group)
            self._groups = None  # a new CRD may add a version to the group list too
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            document = client.request("GET", path, verb="discovery")
        except StatusError as exc:
            if exc.code != 404:
                raise
            document = None
        kinds = None if document is None else _parse_resources(group, version, document)
        known = _GroupVersion(self._clock(), kinds)
        self._gvs[(group, version)] = known
        return known

    def _group_versions(self, *, refresh: bool, client: KubeClient) -> dict[str, list[str]]:
        if self._groups is None or refresh:
            document = client.request("GET", "/apis", verb="discovery")
            self._groups = _parse_groups(document)
            self._groups_at = self._clock()
        return self._groups


class DiscoveryView:
    """One user's (a target's) view of a :class:`Discovery` that others share.

    What anyone read is reused; what must be read is asked through this user's client
    (its request counts, retries and sleep); a "not served" answer read before the view
    was made is checked again once, so a CustomResourceDefinition installed before a
    target opened is seen by it at once, as by a target with discovery of its own.
    """

    def __init__(self, discovery: Discovery, since: float, client: KubeClient) -> None:
        self.shared = discovery
        self._since = since
        self._client = client

    def resolve(self, group: str, kind: str, version: str | None = None) -> APIResource | None:
        """See :meth:`Discovery.resolve`."""
        return self.shared.resolve(group, kind, version, since=self._since, client=self._client)

    def preferred_version(self, group: str) -> str | None:
        """See :meth:`Discovery.preferred_version`."""
        return self.shared.preferred_version(group, since=self._since, client=self._client)

    def invalidate(self, group: str) -> None:
        """See :meth:`Discovery.invalidate` (for every user: a CRD changes the server)."""
        self.shared.invalidate(group)


def _before(fetched_at: float, since: float | None) -> bool:
    return since is not None and fetched_at < since


def _parse_resources(group: str, version: str, document: Any) -> dict[str, APIResource]:
    """kind -> resource from an ``APIResourceList`` (subresources skipped)."""
    kinds: dict[str, APIResource] = {}
    resources = document.get("resources") if isinstance(document, dict) else None
    for item in resources if isinstance(resources, list) else ():
        if not isinstance(item, dict):
            continue
        name, kind = item.get("name"), item.get("kind")
        if not isinstance(name, str) or not isinstance(kind, str) or "/" in name:
            continue
        kinds.setdefault(kind, APIResource(group, version, kind, name, bool(item.get("namespaced"))))
    return kinds


def _parse_groups(document: Any) -> dict[str, list[str]]:
    """group -> versions (preferred first) from an ``APIGroupList``."""
    groups: dict[str, list[str]] = {}
    items = document.get("groups") if isinstance(document, dict) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        versions = [
            v["version"] for v in item.get("versions") or ()
            if isinstance(v, dict) and isinstance(v.get("version"), str)
        ]
        preferred = (item.get("preferredVersion") or {}).get("version")
        if isinstance(preferred, str):
            versions = [preferred] + [v for v in versions if v != preferred]
        groups[item["name"]] = versions
    return groups
