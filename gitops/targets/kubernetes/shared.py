"""What the Kubernetes targets of one process share per cluster connection.

``gitops controller`` opens a ``k8s:`` target per application: a thousand targets on one
cluster. Each used to read the kubeconfig, open a connection pool of its own, read
discovery and watch every kind it owns for itself (a watch per kind and inventory: ten
thousand for a thousand applications). Targets opened with the same kubeconfig (same
files, unchanged since), context and client options now share a :class:`Cluster`: the
``kubernetes`` ApiClient (its connection pool), the discovery cache, the OpenAPI list
types and the :class:`~gitops.targets.kubernetes.cache.Informers` (one watch per kind).

Nothing that belongs to one inventory is shared: each target keeps the ApplySet it is
bound to, what it saw and wrote, its drift handlers, and its own
:class:`~gitops.targets.kubernetes.http.KubeClient` over the shared pool (so its request
counts, rate limiter and give-up-on-an-unreachable-server state stay its own).

Reference-counted: the last target to close a :class:`Cluster` stops its watches and
closes its connections; a kubeconfig changed on disk gives targets opened afterwards a
new one. This module sends no request itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable

from gitops.targets.kubernetes.cache import Informers
from gitops.targets.kubernetes.discovery import Discovery
from gitops.targets.kubernetes.http import KubeClient, load_api_client
from gitops.targets.kubernetes.openapi import ServerListTypes
from gitops.targets.kubernetes.options import KubernetesOptions

__all__ = ["Cluster", "open_cluster", "open_clusters"]

_lock = threading.Lock()
_clusters: dict[Hashable, Cluster] = {}


class Cluster:
    """One API server connection and what is cached about that server."""

    def __init__(self, key: Hashable, url: str, options: KubernetesOptions) -> None:
        self.key = key
        loaded = load_api_client(url, options.kubeconfig, options.context)
        self.api_client = loaded.api_client
        #: the kubeconfig context in use (None: in-cluster service account)
        self.context = loaded.context
        #: the client of the shared reads (discovery, OpenAPI, the informers' lists and watches)
        self.client = client_for(self.api_client, url, options)
        self.discovery = Discovery(self.client)
        self.list_types = ServerListTypes(self.client, self.discovery)
        self.informers = Informers(self.client)
        self.users = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.server!r}, users={self.users})"

    def release(self) -> None:
        """One user is done with it; the last one closes it."""
        with _lock:
            self.users -= 1
            if self.users > 0:
                return
            if _clusters.get(self.key) is self:
                del _clusters[self.key]
        self.informers.close()
        self.client.close()


def client_for(api_client: object, url: str, options: KubernetesOptions) -> KubeClient:
    """A :class:`KubeClient` with the target options' timeouts, limits and retries."""
    return KubeClient(
        api_client, url=url, timeout=options.timeout, connect_timeout=options.connect_timeout,
        unreachable_timeout=options.unreachable_timeout, qps=options.qps, burst=options.burst,
        retries=options.retries,
    )


def open_cluster(url: str, options: KubernetesOptions) -> Cluster:
    """The :class:`Cluster` for these options (made if there is none); call
    :meth:`Cluster.release` when done. Raises what loading the kubeconfig raises
    (InvalidURLError naming ``url`` for an unknown context, TargetError)."""
    key = (_kubeconfig_identity(options.kubeconfig), options.context, options.timeout,
           options.connect_timeout, options.unreachable_timeout, options.qps, options.burst,
           options.retries)
    with _lock:
        cluster = _clusters.get(key)
        if cluster is None:
            cluster = _clusters[key] = Cluster(key, url, options)
        cluster.users += 1
        return cluster


def open_clusters() -> list[Cluster]:
    """The clusters open in this process (for tests and diagnostics)."""
    with _lock:
        return list(_clusters.values())


def _kubeconfig_identity(kubeconfig: str | None) -> Hashable:
    """Which kubeconfig a target would load, down to the files' versions, so a file
    changed on disk is read again by the targets opened next."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files: list[tuple[str, int, int, int]] = []
    for part in path.split(os.pathsep):
        if not part:
            continue
        full = os.path.abspath(os.path.expanduser(part))
        try:
            stat = os.stat(full)
        except OSError:
            files.append((full, -1, -1, -1))
            continue
        files.append((full, stat.st_ino, stat.st_mtime_ns, stat.st_size))
    in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") if kubeconfig is None else None
    return kubeconfig is None, tuple(files), in_cluster
