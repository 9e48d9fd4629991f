"""Stand-ins for the controllers of a real cluster, run synchronously after a write.

- every new Namespace gets the ``default`` ServiceAccount and the ``kube-root-ca.crt``
  ConfigMap, as kube-controller-manager creates them;
- Deployments, StatefulSets, DaemonSets and ReplicaSets get the status of a finished
  rollout (``observedGeneration`` current, replicas ready, Available), written through
  the status subresource by ``kube-controller-manager``;
- Jobs start at once and end a moment later (:mod:`gitops.testing.kube.jobs`).

A workload annotated ``kube-emulator.gitops.dev/rollout: progressing`` (or ``failed``)
gets a rollout that never finishes (or a deadline exceeded), to test health gating.
``KubeEmulator(controllers=False)`` turns all of this off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitops.testing.kube.api import Api
    from gitops.testing.kube.discovery import ResourceType

__all__ = ["ROLLOUT_ANNOTATION", "populate_namespace", "reconcile_status"]

MANAGER = "kube-controller-manager"
ROLLOUT_ANNOTATION = "kube-emulator.gitops.dev/rollout"
_CA = "-----BEGIN CERTIFICATE-----\nMIIBemulatorNotARealCertificate\n-----END CERTIFICATE-----\n"


def populate_namespace(api: Api, namespace: str) -> None:
    """Create what a real cluster creates in every new namespace."""
    sa = api.discovery.lookup("", "v1", "serviceaccounts")
    cm = api.discovery.lookup("", "v1", "configmaps")
    assert sa is not None and cm is not None
    seeds: list[tuple[ResourceType, dict[str, Any]]] = [
        (sa, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}),
        (cm, {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                           "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
              "data": {"ca.crt": _CA}}),
    ]
    for rtype, obj in seeds:
        if api.store.get("", rtype.plural, namespace, obj["metadata"]["name"]) is None:
            api._create(rtype, "v1", namespace, obj, MANAGER, False, ssa_config=None, force=False)


def _condition(kind: str, status: str, reason: str, message: str, stamp: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp, "reason": reason, "message": message}


def desired_status(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The status a workload controller would settle on, or None for kinds it ignores."""
    if rtype.custom:
        return None
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    generation = meta.get("generation", 1)
    mode = (meta.get("annotations") or {}).get(ROLLOUT_ANNOTATION, "complete")
    stamp = meta.get("creationTimestamp", "")
    replicas = int(spec.get("replicas", 1) or 0)
    name = meta["name"]
    if rtype.group == "apps" and rtype.kind == "Deployment":
        if mode == "progressing":
            return {"observedGeneration": generation, "replicas": replicas, "unavailableReplicas": replicas,
                    "conditions": [_condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.', stamp)]}
        if mode == "failed":
            return {"observedGeneration": generation, "replicas": replicas, "unavailableReplicas": replicas,
                    "conditions": [_condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", stamp),
                                   _condition("Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.', stamp)]}
        status: dict[str, Any] = {"observedGeneration": generation}
        if replicas:
            status.update(replicas=replicas, updatedReplicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
        status["conditions"] = [
            _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", stamp),
            _condition("Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.', stamp),
        ]
        return status
    if rtype.group == "apps" and rtype.kind in ("StatefulSet", "ReplicaSet"):
        ready = 0 if mode != "complete" else replicas
        status = {"observedGeneration": generation, "replicas": replicas, "availableReplicas": ready, "readyReplicas": ready}
        if rtype.kind == "StatefulSet":
            status.update(currentReplicas=ready, updatedReplicas=ready, currentRevision=f"{name}-1", updateRevision=f"{name}-1", collisionCount=0)
        return {k: v for k, v in status.items() if v != 0 or k in ("replicas", "observedGeneration", "collisionCount")}
    if rtype.group == "apps" and rtype.kind == "DaemonSet":
        return {"observedGeneration": generation, "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                "numberMisscheduled": 0, "numberReady": 0}
    return None


def reconcile_status(api: Api, rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Write the settled status of a workload after a write (no-op when already there)."""
    if obj["metadata"].get("deletionTimestamp"):
        return
    if rtype.group == "batch" and rtype.kind == "Job" and not rtype.custom:
        api.jobs.observe(rtype, obj)  # Jobs run for a while: see gitops.testing.kube.jobs
        return
    status = desired_status(rtype, obj)
    if status is None or obj.get("status") == status:
        return
    new = {**obj, "status": status}
    version = rtype.versions[0]
    api._update(rtype, version, obj, new, MANAGER, False, subresource="status")
