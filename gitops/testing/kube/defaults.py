"""Server-side defaulting and the fields a real cluster fills in on write.

A real API server defaults many fields (Service ports get a protocol and a targetPort,
Deployments a strategy, containers an imagePullPolicy, ...), turns a Secret's
``stringData`` into ``data``, and labels each Namespace with its name. GitOps tools must
not see those as drift, so the emulator does the common ones too. The list is partial by
design (see ``docs/kubernetes-emulator.md``); this module never validates or stores.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from gitops.testing.kube.events import event_defaults

__all__ = ["apply_defaults", "initial_status"]

_cluster_ips = itertools.count(1)


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for section in ("initContainers", "containers"):
        for container in spec.get(section) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = str(container.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        if isinstance(template.get("spec"), dict):
            _pod_spec(template["spec"])


def _workload(kind: str, spec: dict[str, Any]) -> None:
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec.setdefault("replicas", 1)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    elif kind == "DaemonSet":
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    _template(spec)


def _service(spec: dict[str, Any]) -> None:
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if kind != "ExternalName":
        if not spec.get("clusterIP"):
            n = next(_cluster_ips)
            spec["clusterIP"] = f"10.96.{(n // 250) % 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def apply_defaults(group: str, kind: str, obj: dict[str, Any], custom: bool) -> None:
    """Fill in, in place, what the real server defaults for ``group/kind``."""
    if custom:
        return
    spec = obj.get("spec")
    meta = obj.setdefault("metadata", {})
    if group == "" and kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif group == "" and kind == "Secret":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
    elif group == "" and kind == "Service" and isinstance(spec, dict):
        _service(spec)
    elif group == "" and kind == "Event":
        event_defaults(obj)
    elif group == "" and kind == "Pod" and isinstance(spec, dict):
        _pod_spec(spec)
    elif group == "apps" and isinstance(spec, dict):
        _workload(kind, spec)
    elif group == "batch" and kind == "Job" and isinstance(spec, dict):
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        _template(spec)
    elif group == "batch" and kind == "CronJob" and isinstance(spec, dict):
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job, dict):
            _template(job)


def initial_status(group: str, kind: str, custom: bool) -> dict[str, Any] | None:
    """The status a freshly created object of ``group/kind`` has (None: no status field)."""
    if custom:
        return None
    if group == "" and kind == "Namespace":
        return {"phase": "Active"}
    if group == "" and kind == "Service":
        return {"loadBalancer": {}}
    if group == "" and kind == "PersistentVolumeClaim":
        return {"phase": "Pending"}
    return {}
