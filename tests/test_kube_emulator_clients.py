"""Real clients against the emulator: kubectl, the ``kubernetes`` package, and the process entry point."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.testing.kube import KubeEmulator

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data: {mode: fast}
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: demo}
spec: {size: 3}
"""


class Kubectl:
    """Runs the real kubectl against one emulator, with a private discovery cache."""

    def __init__(self, emu: KubeEmulator, tmp_path: Path) -> None:
        self.emu = emu
        self.tmp_path = tmp_path

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None and self.emu.kubeconfig_path is not None
        cmd = [KUBECTL, "--kubeconfig", str(self.emu.kubeconfig_path), "--cache-dir", str(self.tmp_path / "cache"), *args]
        env = {**os.environ, "HOME": str(self.tmp_path)}
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False)
        if check:
            assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
        return done

    def apply(self, text: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        path = self.tmp_path / f"manifest-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        return self("apply", "--server-side", "-f", str(path), *extra, check=check)


@pytest.fixture
def kubectl(kube_emulator: KubeEmulator, tmp_path: Path) -> Kubectl:
    return Kubectl(kube_emulator, tmp_path)


def live(emu: KubeEmulator, kind: str, name: str) -> dict[str, Any]:
    [obj] = [o for o in emu.objects(kind=kind) if o["metadata"]["name"] == name]
    return obj


@needs_kubectl
def test_kubectl_get_namespaces(kubectl: Kubectl) -> None:
    out = kubectl("get", "ns").stdout
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["NAME", "STATUS", "AGE"]
    assert [line[:2] for line in lines[1:]] == [["default", "Active"], ["kube-node-lease", "Active"],
                                                 ["kube-public", "Active"], ["kube-system", "Active"]]


@needs_kubectl
def test_kubectl_apply_server_side_get_and_conflicts(kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    out = kubectl.apply(MANIFESTS).stdout
    assert out.splitlines() == ["namespace/demo serverside-applied", "deployment.apps/web serverside-applied",
                                "configmap/settings serverside-applied"]
    got = yaml.safe_load(kubectl("get", "deploy", "-n", "demo", "-o", "yaml").stdout)
    assert got["kind"] == "List" and got["items"][0]["spec"]["replicas"] == 2
    assert got["items"][0]["status"]["readyReplicas"] == 2
    shown = kubectl("get", "deploy,cm", "-n", "demo").stdout
    assert "deployment.apps/web" in shown and "configmap/settings" in shown
    kubectl("scale", "deploy", "web", "-n", "demo", "--replicas=4")
    assert live(kube_emulator, "Deployment", "web")["spec"]["replicas"] == 4
    kubectl("patch", "deploy", "web", "-n", "demo", "--type=merge", "-p", '{"spec":{"replicas":5}}')
    conflict = kubectl.apply(MANIFESTS, check=False)
    assert conflict.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1' in conflict.stderr
    assert ".spec.replicas" in conflict.stderr
    kubectl.apply(MANIFESTS, "--force-conflicts")
    deploy = live(kube_emulator, "Deployment", "web")
    assert deploy["spec"]["replicas"] == 2
    owners = {m["manager"] for m in deploy["metadata"]["managedFields"]}
    assert "kubectl" in owners and "kubectl-patch" not in owners


@needs_kubectl
def test_kubectl_patch_types(kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    kubectl.apply(MANIFESTS)
    kubectl("patch", "deploy", "web", "-n", "demo", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":3}]')
    kubectl("patch", "deploy", "web", "-n", "demo", "--type=strategic", "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}')
    kubectl("patch", "deploy", "web", "-n", "demo", "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}')
    kubectl("patch", "cm", "settings", "-n", "demo", "--type=merge", "-p", '{"data":{"mode":"slow"}}')
    deploy = live(kube_emulator, "Deployment", "web")
    assert deploy["spec"]["replicas"] == 3
    assert [(c["name"], c["image"]) for c in deploy["spec"]["template"]["spec"]["containers"]] == [
        ("nginx", "nginx:1.26"), ("sidecar", "busybox:1.36")]
    assert deploy["metadata"]["generation"] == 4
    assert live(kube_emulator, "ConfigMap", "settings")["data"] == {"mode": "slow"}
    shown = json.loads(kubectl("get", "cm", "settings", "-n", "demo", "-o", "json").stdout)
    assert shown["data"] == {"mode": "slow"}


@needs_kubectl
def test_kubectl_delete(kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    kubectl.apply(MANIFESTS)
    out = kubectl("delete", "cm", "settings", "-n", "demo").stdout
    assert out.strip() == 'configmap "settings" deleted'
    missing = kubectl("get", "cm", "settings", "-n", "demo", check=False)
    assert missing.returncode != 0 and 'configmaps "settings" not found' in missing.stderr
    kubectl("delete", "ns", "demo")
    assert [o["metadata"]["name"] for o in kube_emulator.objects(kind="Namespace")] == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    assert kube_emulator.objects(namespace="demo") == []


@needs_kubectl
def test_kubectl_crd_then_custom_resource(kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    kubectl.apply(MANIFESTS)
    kubectl.apply(CRD)
    kubectl.apply(WIDGET)
    assert "w1" in kubectl("get", "widgets", "-n", "demo").stdout
    assert live(kube_emulator, "Widget", "w1")["spec"] == {"size": 3}


def test_kubernetes_client_typed_and_dynamic(kube_emulator: KubeEmulator) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.dynamic import DynamicClient

    api = kubernetes.config.new_client_from_config(str(kube_emulator.kubeconfig_path), context="gitops-emulator")
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "py"}})
    core.create_namespaced_config_map("py", {"metadata": {"name": "a", "labels": {"team": "x"}}, "data": {"k": "v"}})
    listing = core.list_namespaced_config_map("py", label_selector="team=x")
    assert [c.metadata.name for c in listing.items] == ["a"] and listing.metadata.resource_version
    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.read_namespaced_config_map("nope", "py")
    assert missing.value.status == 404 and json.loads(missing.value.body)["reason"] == "NotFound"

    deployments = DynamicClient(api).resources.get(  # type: ignore[no-untyped-call]
       api_version="apps/v1", kind="Deployment")
    body = yaml.safe_load(MANIFESTS.split("---")[1])
    body["metadata"]["namespace"] = "py"
    created = deployments.server_side_apply(body=body, namespace="py", field_manager="gitops", force_conflicts=True)
    assert created.metadata.generation == 1
    assert [m.manager for m in created.metadata.managedFields] == ["gitops"]

    events: list[tuple[str, str]] = []
    rv = listing.metadata.resource_version

    def watch() -> None:
        for event in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "py", resource_version=rv,
                                                     timeout_seconds=1):
            events.append((event["type"], event["object"].metadata.name))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.2)
    core.patch_namespaced_config_map("a", "py", {"data": {"k": "w"}})
    core.delete_namespaced_config_map("a", "py")
    thread.join()
    assert events == [("MODIFIED", "a"), ("DELETED", "a")]
    counts = kube_emulator.counts_by_resource()
    assert counts[("patch", "apps/deployments")] == 1 and counts[("watch", "/configmaps")] == 1


def test_module_entry_point_writes_kubeconfig_when_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "sub" / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "gitops.testing.kube", "--kubeconfig", str(config), "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not config.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.05)
        loaded = yaml.safe_load(config.read_text())
        assert loaded["current-context"] == "gitops-emulator"
        server = loaded["clusters"][0]["cluster"]["server"]
        assert server.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server + "/version", timeout=5) as response:  # ready as soon as the file exists
            assert json.loads(response.read())["major"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
