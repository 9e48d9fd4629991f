"""The manifests that run ``gitops controller`` in a cluster, as ``gitops install`` prints them.

Namespace, the Application CRD, a ServiceAccount, RBAC, a Deployment and a Service for
the metrics and webhook ports. RBAC comes in three parts so it can be narrowed: what the
controller needs for its own objects (Applications and their status, Events; a
ClusterRole), the Leases of leader election (a Role in its namespace), and the right to
apply whatever the applications declare (``gitops-controller-apply``: every verb on
every resource, as good as cluster-admin, left out with ``cluster_wide_apply=False``).
The image is not built here: see examples/controller/Dockerfile. Pure data; nothing is
sent anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gitops import __version__
from gitops.apps.spec import GROUP
from gitops.images.controller import IMAGE_PLURALS
from gitops.operator.crd import PLURAL, all_crds, yaml_documents

__all__ = [
    "CONTROLLER_NAME",
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "METRICS_PORT",
    "RUN_AS_USER",
    "WEBHOOK_PORT",
    "install_manifests",
    "install_yaml",
]

DEFAULT_NAMESPACE = "gitops-system"
#: the image `gitops install` names unless told otherwise; build it from
#: examples/controller/Dockerfile and push it there, or pass ``image=`` (``--image``)
DEFAULT_IMAGE = f"ghcr.io/gitops-sdk/gitops:{__version__}"
CONTROLLER_NAME = "gitops-controller"
APPLY_ROLE = f"{CONTROLLER_NAME}-apply"
LEADER_ELECTION_ROLE = f"{CONTROLLER_NAME}-leader-election"
METRICS_PORT = 8080
WEBHOOK_PORT = 9090
WEBHOOK_DIR = "/etc/gitops/webhook"
RUN_AS_USER = 65532  # the "nonroot" user of distroless images; the example Dockerfile uses it
CACHE_DIR = "/var/cache/gitops"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SELECTOR = {"app.kubernetes.io/name": "gitops", "app.kubernetes.io/component": "controller"}


def install_manifests(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    args: Sequence[str] = (),
    replicas: int = 1,
    cluster_wide_apply: bool = True,
    webhook_secret: str | None = None,
) -> list[dict[str, Any]]:
    """The objects that install the controller, in the order to apply them.

    ``args`` are appended to ``gitops controller --leader-elect --metrics-addr :8080``
    (e.g. ``["--shards", "2"]``). ``webhook_secret`` names a Secret (key ``secret``) you
    create in ``namespace``: it is mounted and the controller serves webhooks on
    ``:9090`` with it (``--webhook-addr :9090 --webhook-secret-file …``); without it no
    webhook server runs (one cannot run without a secret). ``cluster_wide_apply=False`` leaves out the ClusterRole
    that lets the controller apply any object anywhere: grant it Roles where its
    applications deploy instead. Raises ValueError for a namespace that is not a DNS
    label, an empty image, fewer than one replica.
    """
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ValueError("the namespace must be a DNS label (lower-case letters, digits and '-')")
    if not image or any(c.isspace() for c in image):
        raise ValueError("the image must be a non-empty image reference without spaces")
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    labels = {**_SELECTOR, "app.kubernetes.io/part-of": "gitops",
              "app.kubernetes.io/version": __version__}
    subject = [{"kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": namespace}]

    def meta(name: str, namespaced: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if namespaced:
            out["namespace"] = namespace
        return out

    def binding(kind: str, role_kind: str, name: str, namespaced: bool) -> dict[str, Any]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta(name, namespaced),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
                "subjects": subject}

    from gitops.appsets.cluster import RBAC_RULES  # ApplicationSets

    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(labels)}},
        *all_crds(),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(CONTROLLER_NAME)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": meta(CONTROLLER_NAME, namespaced=False), "rules": [
             {"apiGroups": [GROUP], "resources": [PLURAL, *IMAGE_PLURALS.values()],
              "verbs": ["get", "list", "watch", "update", "patch"]},
             {"apiGroups": [GROUP], "resources": [f"{p}/status" for p in (PLURAL, *IMAGE_PLURALS.values())],
              "verbs": ["get", "update", "patch"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
             *RBAC_RULES,
         ]},
        binding("ClusterRoleBinding", "ClusterRole", CONTROLLER_NAME, namespaced=False),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta(LEADER_ELECTION_ROLE), "rules": [
             # list and delete: the shard elector counts replicas by their heartbeat Leases
             # and deletes those of replicas long gone
             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "verbs": ["get", "list", "create", "update", "delete"]},
         ]},
        binding("RoleBinding", "Role", LEADER_ELECTION_ROLE, namespaced=True),
    ]
    if cluster_wide_apply:
        manifests += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": meta(APPLY_ROLE, namespaced=False),
             "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
            binding("ClusterRoleBinding", "ClusterRole", APPLY_ROLE, namespaced=False),
        ]
    if webhook_secret is not None and (len(webhook_secret) > 253
                                       or not _DNS_LABEL.match(webhook_secret)):
        raise ValueError("the webhook Secret's name must be a DNS label")
    manifests += [_deployment(meta(CONTROLLER_NAME), labels, image, args, replicas,
                              webhook_secret),
                  _service(meta(CONTROLLER_NAME))]
    return manifests


def install_yaml(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    args: Sequence[str] = (),
    replicas: int = 1,
    cluster_wide_apply: bool = True,
    webhook_secret: str | None = None,
) -> str:
    """What ``gitops install`` prints: :func:`install_manifests` as one YAML stream."""
    return yaml_documents(install_manifests(namespace=namespace, image=image, args=args,
                                            replicas=replicas, cluster_wide_apply=cluster_wide_apply,
                                            webhook_secret=webhook_secret))


def _deployment(meta: dict[str, Any], labels: dict[str, str], image: str, args: Sequence[str],
                replicas: int, webhook_secret: str | None) -> dict[str, Any]:
    def probe(path: str, period: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "metrics"}, "periodSeconds": period,
                "timeoutSeconds": 2, "failureThreshold": 3}

    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    container = {
        "name": "controller",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["gitops"],
        "args": ["controller", "--leader-elect", "--metrics-addr", f":{METRICS_PORT}",
                 *(["--webhook-addr", f":{WEBHOOK_PORT}", "--webhook-secret-file",
                    f"{WEBHOOK_DIR}/secret"] if webhook_secret else []), *args],
        "env": [
            {"name": "POD_NAME", **field("metadata.name")},  # the leader election identity
            {"name": "POD_NAMESPACE", **field("metadata.namespace")},  # where its Leases live
            {"name": "GITOPS_CACHE_DIR", "value": CACHE_DIR},
            {"name": "HOME", "value": "/tmp"},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                  {"name": "webhook", "containerPort": WEBHOOK_PORT, "protocol": "TCP"}],
        "livenessProbe": probe("/healthz", 10),
        "readinessProbe": probe("/readyz", 5),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    if webhook_secret:
        container["volumeMounts"].append(  # type: ignore[attr-defined]
            {"name": "webhook", "mountPath": WEBHOOK_DIR, "readOnly": True})
        volumes.append({"name": "webhook", "secret": {"secretName": webhook_secret}})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(_SELECTOR)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": CONTROLLER_NAME,
                    # time to finish the syncs in flight after SIGTERM
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER,
                                        "runAsGroup": RUN_AS_USER, "fsGroup": RUN_AS_USER,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _service(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": dict(_SELECTOR),
            "ports": [
                {"name": "http-metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
                {"name": "http-webhook", "port": WEBHOOK_PORT, "targetPort": "webhook", "protocol": "TCP"},
            ],
        },
    }
