"""Order planned changes: waves, then a kind order, then namespace and name.

Applies go first, sorted so that what others depend on exists before them
(Namespaces, then CRDs, then the cluster and namespace plumbing, then workloads, then
custom resources); deletions come last, in exactly the reverse order. An explicit
``gitops.dev/sync-wave`` annotation (an integer, default 0; Argo CD's
``argocd.argoproj.io/sync-wave`` is read too, ours winning) moves a resource to an
earlier or later wave, as Argo CD's sync waves do. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gitops.errors import ManifestError
from gitops.model import Action, Change, Resource, ResourceKey

__all__ = [
    "ARGOCD_SYNC_WAVE_ANNOTATION",
    "KIND_ORDER",
    "SYNC_WAVE_ANNOTATION",
    "apply_order",
    "group_waves",
    "kind_rank",
    "sort_changes",
    "wave_of",
]

SYNC_WAVE_ANNOTATION = "gitops.dev/sync-wave"
#: Argo CD's name for the same annotation (``SYNC_WAVE_ANNOTATION`` wins when both are set).
ARGOCD_SYNC_WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"

#: Apply order of well-known kinds; unknown kinds (custom resources) come after all of them.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "CustomResourceDefinition",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "PriorityClass",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}


def kind_rank(kind: str) -> int:
    """Position of ``kind`` in the apply order (unknown kinds last)."""
    return _RANK.get(kind, len(KIND_ORDER))


def wave_of(resource: Resource | None) -> int:
    """The sync wave a resource declares (0 when it declares none)."""
    if resource is None:
        return 0
    annotations = resource.annotations
    if not annotations:
        return 0
    name = SYNC_WAVE_ANNOTATION
    value = annotations.get(name)
    if value is None:
        name = ARGOCD_SYNC_WAVE_ANNOTATION
        value = annotations.get(name)
        if value is None:
            return 0
    try:
        return int(str(value).strip())
    except ValueError:
        raise ManifestError(
            resource.origin or str(resource.key),
            f"annotation {name} must be an integer, got {value!r}",
        ) from None


def apply_order(wave: int, key: ResourceKey) -> tuple[int, int, str, str, str, str]:
    """The sort key of an apply: wave, kind order, then group, kind, namespace, name."""
    return (wave, kind_rank(key.kind), key.group, key.kind, key.namespace, key.name)


def _apply_sort_key(change: Change) -> tuple[int, int, str, str, str, str]:
    return apply_order(change.wave, change.key)


def sort_changes(changes: Iterable[Change]) -> tuple[Change, ...]:
    """Applies in (wave, kind order, key) order, then deletions in the reverse of that order."""
    applies = [c for c in changes if c.action is not Action.DELETE]
    deletes = [c for c in changes if c.action is Action.DELETE]
    applies.sort(key=_apply_sort_key)
    deletes.sort(key=_apply_sort_key, reverse=True)
    return (*applies, *deletes)


def group_waves(changes: Sequence[Change]) -> list[list[Change]]:
    """Split sorted changes into consecutive groups of the same phase (apply/delete) and wave."""
    groups: list[list[Change]] = []
    previous: tuple[bool, int] | None = None
    for change in changes:
        marker = (change.action is Action.DELETE, change.wave)
        if marker != previous:
            groups.append([])
            previous = marker
        groups[-1].append(change)
    return groups
