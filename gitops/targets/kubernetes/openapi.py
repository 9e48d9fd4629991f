"""List types of the kinds a Kubernetes server serves, read from its OpenAPI v3 documents.

The differ pairs items of keyed lists by key (see :mod:`gitops.differs.lists`). For the
built-in kinds it knows Kubernetes 1.32's table; for everything else (custom resources:
``x-kubernetes-list-type: map`` with ``x-kubernetes-list-map-keys``, ``set``) it asks
the server, as kubectl does:

* ``GET /openapi/v3``: the index, ``{"paths": {"apis/GROUP/VERSION": {"serverRelativeURL":
  "/openapi/v3/apis/GROUP/VERSION?hash=..."}}}``;
* ``GET`` the ``serverRelativeURL`` of a group-version (its hash changes with its
  content), only when a kind of that group is first compared, and reduced at once to
  the fields that lead to a list.

Answers are cached per group-version and kind; after ``ttl`` seconds the index is read
again (a new CustomResourceDefinition, a changed schema) and a document is fetched
again only if its URL changed. A server without OpenAPI v3, or a failed request, means
"unknown" (lists compare by position) until the next refresh; it is logged, never
raised, so a plan never fails for want of list types. Nothing is sent until the first
question. This module only reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from gitops.differs.lists import (
    ChainListTypes,
    SchemaListTypes,
    builtin_list_types,
    openapi_list_types,
    version_priority,
)
from gitops.model import ListType
from gitops.targets.kubernetes.discovery import Discovery, DiscoveryView
from gitops.targets.kubernetes.errors import ConnectionFailed, StatusError
from gitops.targets.kubernetes.http import KubeClient

__all__ = ["ServerListTypes", "ServerListTypesView", "cluster_list_types"]

log = logging.getLogger("gitops.targets.kubernetes")

INDEX = "/openapi/v3"


@dataclass(slots=True)
class _Document:
    url: str
    types: SchemaListTypes | None  # None: the document could not be read


class ServerListTypes:
    """:class:`~gitops.model.ListTypes` from the server's ``/openapi/v3`` documents.

    ``discovery`` (optional) names a group's preferred version, read first; otherwise
    versions are tried GA first. Thread-safe.
    """

    def __init__(
        self,
        client: KubeClient,
        discovery: Discovery | DiscoveryView | None = None,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._discovery = discovery
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.RLock()
        self._index: dict[tuple[str, str], str] | None = None  # (group, version) -> URL
        self._index_at = 0.0
        self._documents: dict[tuple[str, str], _Document] = {}
        self._kinds: dict[tuple[str, str], tuple[float, SchemaListTypes | None]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client.server!r})"

    def knows(self, group: str, kind: str) -> bool:
        """Whether a served document describes ``group/kind``."""
        return self._for(group, kind, self._asking) is not None

    def list_type(self, group: str, kind: str, path: tuple[str, ...]) -> ListType | None:
        """The list type at ``path`` of ``group/kind`` objects, or None when unknown."""
        found = self._for(group, kind, self._asking)
        return None if found is None else found.list_type(group, kind, path)

    def view(self, client: KubeClient, discovery: Discovery | DiscoveryView | None = None
             ) -> ServerListTypesView:
        """These list types as one more user sees them, asking through ``client`` (and
        ``discovery``) when the server must be asked: see :class:`ServerListTypesView`."""
        return ServerListTypesView(self, _Asking(client, discovery, self._clock()))

    @property
    def _asking(self) -> _Asking:
        return _Asking(self._client, self._discovery, None)

    def _fresh(self, known: tuple[float, SchemaListTypes | None] | None, now: float,
               since: float | None) -> bool:
        return known is not None and now - known[0] < self._ttl and (
            known[1] is not None or since is None or known[0] >= since)

    def _for(self, group: str, kind: str, asking: _Asking) -> SchemaListTypes | None:
        now = self._clock()
        known = self._kinds.get((group, kind))
        if self._fresh(known, now, asking.since):
            assert known is not None
            return known[1]
        with self._lock:
            known = self._kinds.get((group, kind))
            if self._fresh(known, now, asking.since):
                assert known is not None
                return known[1]
            if known is not None and asking.since is not None and self._index_at < asking.since:
                self._index = None  # unknown since before the view: read the index again
            found = None
            for version in self._versions(group, asking):
                document = self._document(group, version, asking.client)
                if document is not None and document.knows(group, kind):
                    found = document
                    break
            self._kinds[(group, kind)] = (now, found)
            return found

    def _versions(self, group: str, asking: _Asking) -> list[str]:
        index = self._read_index(asking.client)
        versions = sorted((v for g, v in index if g == group), key=version_priority)
        preferred = self._preferred(group, asking.discovery)
        if preferred in versions:
            versions.remove(preferred)
            versions.insert(0, preferred)
        return versions

    @staticmethod
    def _preferred(group: str, discovery: Discovery | DiscoveryView | None) -> str | None:
        if discovery is None:
            return None
        try:
            return discovery.preferred_version(group)
        except (StatusError, ConnectionFailed) as exc:
            log.debug("preferred version of %r unknown: %s", group, exc)
            return None

    def _read_index(self, client: KubeClient) -> dict[tuple[str, str], str]:
        if self._index is not None and self._clock() - self._index_at < self._ttl:
            return self._index
        index: dict[tuple[str, str], str] = {}
        try:
            document = client.request("GET", INDEX, verb="openapi")
        except (StatusError, ConnectionFailed) as exc:
            if not (isinstance(exc, StatusError) and exc.code == 404):
                log.warning("cannot read %s (lists compare by position until the next try): "
                            "%s", INDEX, exc)
            document = None
        paths = document.get("paths") if isinstance(document, dict) else None
        for key, item in paths.items() if isinstance(paths, dict) else ():
            group_version = _group_version(str(key))
            url = item.get("serverRelativeURL") if isinstance(item, dict) else None
            if group_version is not None and isinstance(url, str) and url.startswith("/"):
                index[group_version] = url
        self._index, self._index_at = index, self._clock()
        return index

    def _document(self, group: str, version: str, client: KubeClient) -> SchemaListTypes | None:
        url = (self._index or {}).get((group, version))
        if url is None:
            return None
        cached = self._documents.get((group, version))
        if cached is not None and cached.url == url:
            return cached.types
        parts = urlsplit(url)
        try:
            raw = client.request("GET", parts.path, query=parse_qsl(parts.query), verb="openapi")
        except (StatusError, ConnectionFailed) as exc:
            log.warning("cannot read %s (lists of %s compare by position until the next "
                        "try): %s", parts.path, group or "core", exc)
            return None  # not cached: tried again after the kind's entry expires
        types = openapi_list_types(raw) if isinstance(raw, dict) else None
        self._documents[(group, version)] = _Document(url, types)
        return types


@dataclass(frozen=True, slots=True)
class _Asking:
    """Who asks: the client and discovery to read through; ``since``: a view's start."""

    client: KubeClient
    discovery: Discovery | DiscoveryView | None
    since: float | None


class ServerListTypesView:
    """One user's (a target's) view of :class:`ServerListTypes` that others share.

    What anyone read is reused; what must be read is asked through this user's client;
    a kind found unknown before the view was made is looked for again once (its
    CustomResourceDefinition may have been installed since).
    """

    def __init__(self, shared: ServerListTypes, asking: _Asking) -> None:
        self.shared = shared
        self._asking = asking

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shared!r})"

    def knows(self, group: str, kind: str) -> bool:
        """See :meth:`ServerListTypes.knows`."""
        return self.shared._for(group, kind, self._asking) is not None

    def list_type(self, group: str, kind: str, path: tuple[str, ...]) -> ListType | None:
        """See :meth:`ServerListTypes.list_type`."""
        found = self.shared._for(group, kind, self._asking)
        return None if found is None else found.list_type(group, kind, path)


def _group_version(key: str) -> tuple[str, str] | None:
    """``api/v1`` -> ``("", "v1")``, ``apis/apps/v1`` -> ``("apps", "v1")``; else None."""
    parts = key.split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


def cluster_list_types(client: KubeClient, discovery: Discovery | DiscoveryView | None = None
                       ) -> ChainListTypes:
    """What the Kubernetes target declares: Kubernetes 1.32's built-in table, then the server.

    The built-in kinds never cost a request (their documents are megabytes); custom
    resources are read from the server's OpenAPI v3 on first use.
    """
    return ChainListTypes(builtin_list_types(), ServerListTypes(client, discovery))
