"""Health assessment of live objects, kstatus-like.

``assess(manifest)`` looks only at the object itself (its ``status`` and
``metadata.generation``) and answers Healthy, Progressing, Degraded, Suspended or
Unknown; Missing is for objects that do not exist. It knows the built-in workload
kinds and falls back to the generic ``Ready``/``Reconciling``/``Stalled`` conditions
with ``observedGeneration`` that well-behaved controllers publish. Pure functions:
no I/O, no mutation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitops.model import HealthStatus

__all__ = ["assess", "failure_message"]

Manifest = Mapping[str, Any]


def _status(obj: Manifest) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _spec(obj: Manifest) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _conditions(obj: Manifest) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for cond in _status(obj).get("conditions") or ():
        if isinstance(cond, Mapping) and isinstance(cond.get("type"), str):
            found[cond["type"]] = cond
    return found


def _is_true(cond: Mapping[str, Any] | None) -> bool:
    return cond is not None and str(cond.get("status")) == "True"


def _observed_current(obj: Manifest) -> bool:
    """The controller has seen the latest spec (status.observedGeneration >= generation)."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if generation is None or observed is None:
        return True
    try:
        return int(observed) >= int(generation)
    except (TypeError, ValueError):
        return True


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _deployment(obj: Manifest) -> HealthStatus:
    if _spec(obj).get("paused"):
        return HealthStatus.SUSPENDED
    if not _observed_current(obj):
        return HealthStatus.PROGRESSING
    conds = _conditions(obj)
    progressing = conds.get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return HealthStatus.DEGRADED
    status = _status(obj)
    want = _int(_spec(obj).get("replicas"), 1)
    if (
        _int(status.get("updatedReplicas")) < want
        or _int(status.get("replicas")) > _int(status.get("updatedReplicas"))
        or _int(status.get("availableReplicas")) < want
    ):
        return HealthStatus.PROGRESSING
    return HealthStatus.HEALTHY


def _statefulset(obj: Manifest) -> HealthStatus:
    if not _observed_current(obj):
        return HealthStatus.PROGRESSING
    status = _status(obj)
    want = _int(_spec(obj).get("replicas"), 1)
    if _int(status.get("readyReplicas")) < want:
        return HealthStatus.PROGRESSING
    strategy = (_spec(obj).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy == "RollingUpdate" and status.get("updateRevision") not in (
        None,
        status.get("currentRevision"),
    ):
        return HealthStatus.PROGRESSING
    return HealthStatus.HEALTHY


def _daemonset(obj: Manifest) -> HealthStatus:
    if not _observed_current(obj):
        return HealthStatus.PROGRESSING
    status = _status(obj)
    desired = _int(status.get("desiredNumberScheduled"))
    if _int(status.get("updatedNumberScheduled")) < desired:
        return HealthStatus.PROGRESSING
    if _int(status.get("numberAvailable")) < desired:
        return HealthStatus.PROGRESSING
    return HealthStatus.HEALTHY


def _replicaset(obj: Manifest) -> HealthStatus:
    if not _observed_current(obj):
        return HealthStatus.PROGRESSING
    if _is_true(_conditions(obj).get("ReplicaFailure")):
        return HealthStatus.DEGRADED
    want = _int(_spec(obj).get("replicas"), 1)
    if _int(_status(obj).get("availableReplicas")) < want:
        return HealthStatus.PROGRESSING
    return HealthStatus.HEALTHY


_POD_WAITING_FAILURES = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull")


def _pod(obj: Manifest) -> HealthStatus:
    """Argo CD's rule: a pod that runs to completion (``restartPolicy`` Never or OnFailure,
    as a hook's) is Healthy only once ``Succeeded``; a serving pod (Always) once Ready."""
    status = _status(obj)
    phase = status.get("phase")
    if phase == "Succeeded":
        return HealthStatus.HEALTHY
    if phase == "Failed":
        return HealthStatus.DEGRADED
    if _spec(obj).get("restartPolicy", "Always") != "Always":
        # An image pull that fails may still recover: a run-to-completion pod is not
        # failed until its phase says so.
        return HealthStatus.PROGRESSING
    for cs in status.get("containerStatuses") or ():
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _POD_WAITING_FAILURES:
            return HealthStatus.DEGRADED
    if phase == "Running" and _is_true(_conditions(obj).get("Ready")):
        return HealthStatus.HEALTHY
    return HealthStatus.PROGRESSING


def _job(obj: Manifest) -> HealthStatus:
    """kstatus' and Argo CD's rule: failed when the ``Failed`` condition is True, done when
    ``Complete`` is; running (or suspended) until then."""
    conds = _conditions(obj)
    if _is_true(conds.get("Failed")):
        return HealthStatus.DEGRADED
    if _is_true(conds.get("Complete")):
        return HealthStatus.HEALTHY
    if _spec(obj).get("suspend"):
        return HealthStatus.SUSPENDED
    return HealthStatus.PROGRESSING


def _service(obj: Manifest) -> HealthStatus:
    if _spec(obj).get("type") != "LoadBalancer":
        return HealthStatus.HEALTHY
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress")
    return HealthStatus.HEALTHY if ingress else HealthStatus.PROGRESSING


def _ingress(obj: Manifest) -> HealthStatus:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress")
    return HealthStatus.HEALTHY if ingress else HealthStatus.PROGRESSING


def _pvc(obj: Manifest) -> HealthStatus:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return HealthStatus.HEALTHY
    if phase == "Lost":
        return HealthStatus.DEGRADED
    return HealthStatus.PROGRESSING


def _crd(obj: Manifest) -> HealthStatus:
    conds = _conditions(obj)
    if _is_true(conds.get("Established")):
        return HealthStatus.HEALTHY
    names_accepted = conds.get("NamesAccepted")
    if names_accepted is not None and not _is_true(names_accepted):
        return HealthStatus.DEGRADED
    return HealthStatus.PROGRESSING


def _namespace(obj: Manifest) -> HealthStatus:
    phase = _status(obj).get("phase")
    return HealthStatus.PROGRESSING if phase == "Terminating" else HealthStatus.HEALTHY


def _generic(obj: Manifest) -> HealthStatus:
    """kstatus' generic rules: Stalled/Reconciling/Ready conditions and observedGeneration."""
    if "status" not in obj or not _conditions(obj):
        return HealthStatus.HEALTHY  # no controller reports on it: existing is healthy
    conds = _conditions(obj)
    if _is_true(conds.get("Stalled")):
        return HealthStatus.DEGRADED
    if not _observed_current(obj) or _is_true(conds.get("Reconciling")):
        return HealthStatus.PROGRESSING
    ready = conds.get("Ready")
    if ready is None:
        return HealthStatus.HEALTHY
    if _is_true(ready):
        return HealthStatus.HEALTHY
    if str(ready.get("status")) == "False" and ready.get("reason") not in (None, "Progressing"):
        return HealthStatus.DEGRADED
    return HealthStatus.PROGRESSING


_BY_KIND: dict[tuple[str, str], Callable[[Manifest], HealthStatus]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("", "PersistentVolumeClaim"): _pvc,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("", "Namespace"): _namespace,
}


def assess(manifest: Manifest | None) -> HealthStatus:
    """Return the health of a live object (``MISSING`` for None)."""
    if manifest is None:
        return HealthStatus.MISSING
    if (manifest.get("metadata") or {}).get("deletionTimestamp"):
        return HealthStatus.PROGRESSING
    api_version = str(manifest.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    rule = _BY_KIND.get((group, str(manifest.get("kind", ""))), _generic)
    return rule(manifest)


def _condition_text(cond: Mapping[str, Any]) -> str:
    parts = [str(cond[k]) for k in ("reason", "message") if cond.get(k)]
    return ": ".join(parts)


def _pod_failure(obj: Manifest) -> str:
    status = _status(obj)
    if status.get("message"):
        return str(status["message"])
    statuses = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    for cs in statuses:
        terminated = ((cs or {}).get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"])
        if terminated.get("reason") == "OOMKilled":
            return "OOMKilled"
        if _int(terminated.get("exitCode")):
            return f"container {cs.get('name')!r} failed with exit code {terminated['exitCode']}"
    for cs in statuses:
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _POD_WAITING_FAILURES:
            return _condition_text(waiting)
    return str(status.get("reason") or "")


def failure_message(manifest: Manifest | None) -> str:
    """Why an object is Degraded, as its status says (``BackoffLimitExceeded: Job has
    reached the specified backoff limit``); ``""`` when it does not say."""
    if manifest is None:
        return ""
    kind = str(manifest.get("kind", ""))
    conds = _conditions(manifest)
    if kind == "Pod":
        return _pod_failure(manifest)
    for name in ("Failed", "Stalled", "ReplicaFailure"):
        if _is_true(conds.get(name)):
            return _condition_text(conds[name])
    ready = conds.get("Ready")
    if ready is not None and str(ready.get("status")) == "False":
        return _condition_text(ready)
    return ""
