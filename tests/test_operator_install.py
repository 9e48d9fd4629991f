"""`gitops install`: the controller's Namespace, CRD, RBAC, Deployment and Service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import kubectl, needs_kubectl, operator_emulator, wait_for

from gitops import __version__
from gitops.operator.crd import application_crd
from gitops.operator.install import (
    DEFAULT_IMAGE,
    METRICS_PORT,
    RUN_AS_USER,
    WEBHOOK_PORT,
    install_manifests,
    install_yaml,
)
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]  # the fixture, imported for pytest

DOCKERFILE = Path(__file__).resolve().parent.parent / "examples" / "controller" / "Dockerfile"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def by_kind(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = by_kind(manifests, kind, name)
    return found


def granted(manifests: list[dict[str, Any]], namespace: str) -> set[tuple[str, str, str, str]]:
    """(scope, group, resource, verb) the controller's ServiceAccount is granted, wildcards as written."""
    grants = set()
    for binding in by_kind(manifests, "ClusterRoleBinding") + by_kind(manifests, "RoleBinding"):
        if {"kind": "ServiceAccount", "name": "gitops-controller", "namespace": namespace} not in binding["subjects"]:
            continue
        role = one(manifests, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        scope = "cluster" if role["kind"] == "ClusterRole" else role["metadata"]["namespace"]
        for rule in role["rules"]:
            grants |= {(scope, g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def allows(grants: set[tuple[str, str, str, str]], scope: str, group: str, resource: str, verb: str) -> bool:
    return any(s in ("cluster", scope) and g in (group, "*") and r in (resource, "*") and v in (verb, "*")
               for s, g, r, v in grants)


def test_objects_in_the_order_to_apply_them() -> None:
    manifests = install_manifests()
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("Namespace", "gitops-system"),
        ("CustomResourceDefinition", "applications.gitops.dev"),
        ("CustomResourceDefinition", "imagepolicies.gitops.dev"),
        ("CustomResourceDefinition", "imageupdateautomations.gitops.dev"),
        ("CustomResourceDefinition", "applicationsets.gitops.dev"),
        ("ServiceAccount", "gitops-controller"),
        ("ClusterRole", "gitops-controller"),
        ("ClusterRoleBinding", "gitops-controller"),
        ("Role", "gitops-controller-leader-election"),
        ("RoleBinding", "gitops-controller-leader-election"),
        ("ClusterRole", "gitops-controller-apply"),
        ("ClusterRoleBinding", "gitops-controller-apply"),
        ("Deployment", "gitops-controller"),
        ("Service", "gitops-controller"),
    ]
    assert manifests[1] == application_crd()


@pytest.mark.parametrize("namespace", ["gitops-system", "ops"])
def test_everything_namespaced_is_in_the_namespace(namespace: str) -> None:
    for manifest in install_manifests(namespace=namespace):
        if manifest["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in manifest["metadata"]
        else:
            assert manifest["metadata"]["namespace"] == namespace, manifest["kind"]


def test_rbac_grants_what_the_controller_does() -> None:
    grants = granted(install_manifests(cluster_wide_apply=False), "gitops-system")
    for verb in ("get", "list", "watch", "update", "patch"):
        assert allows(grants, "any", "gitops.dev", "applications", verb)
    for verb in ("update", "patch"):
        assert allows(grants, "any", "gitops.dev", "applications/status", verb)
    for verb in ("create", "patch"):
        assert allows(grants, "any", "", "events", verb)
    for verb in ("get", "list", "create", "update", "delete"):
        assert allows(grants, "gitops-system", "coordination.k8s.io", "leases", verb)
    # narrowed: nothing else, and Leases only in its own namespace
    assert not allows(grants, "gitops-system", "coordination.k8s.io", "leases", "watch")
    assert not allows(grants, "kube-system", "coordination.k8s.io", "leases", "update")
    assert not allows(grants, "default", "apps", "deployments", "patch")
    assert not allows(grants, "any", "gitops.dev", "applicationsets", "delete")


def test_cluster_wide_apply_is_everything_and_can_be_left_out() -> None:
    grants = granted(install_manifests(), "gitops-system")
    assert allows(grants, "default", "apps", "deployments", "patch")
    assert allows(grants, "any", "example.com", "widgets", "delete")
    narrowed = install_manifests(cluster_wide_apply=False)
    assert not by_kind(narrowed, "ClusterRole", "gitops-controller-apply")
    assert not by_kind(narrowed, "ClusterRoleBinding", "gitops-controller-apply")


def test_webhooks_are_served_only_with_a_secret_mounted() -> None:
    """A webhook server cannot run without its secret: the default install serves none, and
    naming a Secret mounts it and passes both flags (the controller starts with them)."""
    container = one(install_manifests(webhook_secret="hooks"), "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--webhook-addr") + 1] == ":9090"
    secret_file = args[args.index("--webhook-secret-file") + 1]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook")
    assert secret_file == f"{mount['mountPath']}/secret" and mount["readOnly"] is True
    volumes = one(install_manifests(webhook_secret="hooks"), "Deployment")[
        "spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook", "secret": {"secretName": "hooks"}} in volumes


def test_the_deployment_runs_the_controller_safely() -> None:
    deployment = one(install_manifests(args=["--shards", "2"]), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == DEFAULT_IMAGE == f"ghcr.io/gitops-sdk/gitops:{__version__}"
    assert [*container["command"], *container["args"]] == [
        "gitops", "controller", "--leader-elect", "--metrics-addr", ":8080", "--shards", "2"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": METRICS_PORT, "webhook": WEBHOOK_PORT} == {"metrics": 8080, "webhook": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == RUN_AS_USER
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["serviceAccountName"] == "gitops-controller"
    # read-only root: every place it writes is a volume
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {env["GITOPS_CACHE_DIR"], env["HOME"]} <= mounts
    assert {"POD_NAME", "POD_NAMESPACE"} <= set(env)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_service_reaches_the_metrics_and_webhook_ports() -> None:
    manifests = install_manifests()
    service, deployment = one(manifests, "Service"), one(manifests, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    named = {p["name"] for p in container["ports"]}
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(8080, "metrics"), (9090, "webhook")}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named


def test_parameters() -> None:
    manifests = install_manifests(namespace="ops", image="registry.local/gitops:dev", replicas=2)
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/gitops:dev"
    assert one(manifests, "Namespace")["metadata"]["name"] == "ops"
    for binding in by_kind(manifests, "ClusterRoleBinding") + by_kind(manifests, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "ops"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"namespace": "Gitops"}, "DNS label"),
    ({"namespace": "a" * 64}, "DNS label"),
    ({"image": ""}, "image"),
    ({"image": "a b"}, "image"),
    ({"replicas": 0}, "replicas"),
])
def test_bad_parameters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        install_manifests(**kwargs)


def test_install_yaml_is_the_manifests() -> None:
    assert list(yaml.safe_load_all(install_yaml(namespace="ops", args=["--log-format", "json"]))) == \
        install_manifests(namespace="ops", args=["--log-format", "json"])


def test_the_example_dockerfile_matches_the_deployment() -> None:
    text = DOCKERFILE.read_text()
    container = one(install_manifests(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert re.search(rf"^USER {RUN_AS_USER}:{RUN_AS_USER}$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["gitops"\]$', text, re.M) and container["command"] == ["gitops"]
    assert f"GITOPS_CACHE_DIR={env['GITOPS_CACHE_DIR']}" in text
    assert '"gitops-sdk[kubernetes]"' in text


@needs_kubectl
def test_kubectl_applies_the_installation(operator_emulator: KubeEmulator) -> None:
    document = install_yaml(namespace="ops", args=["--shards", "2"])
    dry = kubectl(operator_emulator, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=document,
                  check=False)
    # a dry run of a new namespace's contents fails on a real server too (the namespace is not there)
    assert dry.returncode == 0 or 'namespaces "ops" not found' in dry.stderr, dry.stderr
    kubectl(operator_emulator, "apply", "--server-side", "-f", "-", stdin=document)
    kubectl(operator_emulator, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=document)
    for kind, name in [("serviceaccount", "gitops-controller"), ("role", "gitops-controller-leader-election"),
                       ("rolebinding", "gitops-controller-leader-election"), ("service", "gitops-controller")]:
        kubectl(operator_emulator, "get", "-n", "ops", kind, name)
    for kind, name in [("clusterrole", "gitops-controller"), ("clusterrolebinding", "gitops-controller-apply"),
                       ("crd", "applications.gitops.dev")]:
        kubectl(operator_emulator, "get", kind, name)

    def available() -> bool:
        deployment = json.loads(kubectl(operator_emulator, "get", "-n", "ops", "deployment",
                                        "gitops-controller", "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in deployment.get("status", {}).get("conditions", [])}
        return conditions.get("Available") == "True"

    wait_for(available, 10, "the emulator's stand-in rollout of the controller Deployment")
