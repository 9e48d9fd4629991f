"""Other writers on a real-ish cluster: ``kubectl set env`` and an injected sidecar are not drift.

Runs the real ``kubectl`` against the Kubernetes API emulator: gitops syncs a Deployment,
another writer changes it with kubectl, and the next plan must be empty (no
self-healing loop that applies forever); an item gitops applied and the source then
drops is drift, and one sync converges.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops import Reconciler
from gitops.targets.kubernetes import KubernetesTarget

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


def kubectl(emulator: Any, *args: str) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(emulator.kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def write(folder: Path, *manifests: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for n, manifest in enumerate(manifests):
        (folder / f"{n:02d}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def web(ns: str, *env: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                     "env": [{"name": e, "value": e.lower()} for e in env],
                                     "ports": [{"containerPort": 80}]}]}}},
    }


def test_other_writers_items_are_not_drift_and_removed_items_converge(
    kube_emulator_session: Any, tmp_path: Path
) -> None:
    emulator = kube_emulator_session
    ns = f"writers-{uuid.uuid4().hex[:8]}"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    source = write(tmp_path / "src", namespace, web(ns, "A", "B"))
    target = KubernetesTarget("k8s:", kubeconfig=str(emulator.kubeconfig_path))
    try:
        with Reconciler(str(source), target, name=f"w-{uuid.uuid4().hex[:8]}") as rec:
            assert rec.sync().succeeded
            assert rec.plan().in_sync

            kubectl(emulator, "set", "env", "deployment/web", "-n", ns, "DEBUG=1")
            sidecar = ('{"spec":{"template":{"spec":{"containers":[{"name":"istio-proxy",'
                       '"image":"istio/proxyv2:1.24"}]}}}}')
            kubectl(emulator, "patch", "deployment", "web", "-n", ns, "--type=strategic",
                    "-p", sidecar)
            live = yaml.safe_load(kubectl(emulator, "get", "deployment", "web", "-n", ns,
                                          "-o", "yaml"))
            containers = live["spec"]["template"]["spec"]["containers"]
            assert {c["name"] for c in containers} == {"web", "istio-proxy"}
            web_env = next(c for c in containers if c["name"] == "web")["env"]
            assert {e["name"] for e in web_env} == {"A", "B", "DEBUG"}
            plan = rec.plan()
            assert plan.in_sync, [c.diff.text for c in plan.changes if c.diff]

            write(source, namespace, web(ns, "A"))  # the source drops B, which gitops applied
            plan = rec.plan()
            assert [c.key.name for c in plan.changes] == ["web"]
            assert plan.changes[0].diff is not None
            assert "-        - name: B" in plan.changes[0].diff.text
            assert "istio-proxy" not in plan.changes[0].diff.text
            assert rec.sync().succeeded
            assert rec.plan().in_sync
            live = yaml.safe_load(kubectl(emulator, "get", "deployment", "web", "-n", ns,
                                          "-o", "yaml"))
            containers = live["spec"]["template"]["spec"]["containers"]
            web_env = next(c for c in containers if c["name"] == "web")["env"]
            assert {e["name"] for e in web_env} == {"A", "DEBUG"}  # B gone, theirs kept
            assert {c["name"] for c in containers} == {"web", "istio-proxy"}
    finally:
        target.close()
