"""The Kubernetes target: ``k8s:`` (current kubeconfig context) or ``k8s://CONTEXT``.

Server-side apply with a field manager, an ApplySet inventory in the cluster, one LIST
per kind and namespace for live reads, an optional watch cache that makes a no-op
reconcile free and reports drift, kstatus-like health. See ``docs/kubernetes.md``.

Modules, one job each: :mod:`.options` (URL grammar and options), :mod:`.http` (the seam
to the API server: kubeconfig, timeouts, QPS, retries), :mod:`.errors` (API failures as
gitops errors), :mod:`.discovery` (kind -> resource), :mod:`.apply` (server-side apply
requests), :mod:`.applyset` (the inventory's format), :mod:`.parents` (the inventory's
compare-and-swap writes), :mod:`.cache` (watches), and :mod:`.target` (the Target
contract over them).

Needs the ``kubernetes`` extra; importing this package without it raises ImportError
saying what to install, and nothing else in gitops imports it.
"""

from __future__ import annotations

try:
    from gitops.targets.kubernetes.target import KubernetesTarget
except ImportError as exc:
    if "kubernetes package" in str(exc):
        raise
    raise ImportError(
        f"the Kubernetes target needs the kubernetes package: "
        f"pip install 'gitops-sdk[kubernetes]' ({exc})"
    ) from exc

from gitops.targets.kubernetes.cache import DriftEvent
from gitops.targets.kubernetes.options import KubernetesOptions

__all__ = ["DriftEvent", "KubernetesOptions", "KubernetesTarget"]
