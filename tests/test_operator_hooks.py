"""A PreSync hook Job through the operator, on the API emulator's Job controller.

The application's source holds a ConfigMap and a PreSync Job hook: the ConfigMap is
applied only after the Job completed; a Job that fails stops the sync, the status names
the hook, and the ConfigMap is not applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kubernetes")

from operator_support import MemoryStatusStore

from gitops.apps import Application
from gitops.operator import AppReconciler
from gitops.testing.kube import KubeEmulator


def job(result: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": "migrate-", "namespace": "hooks", "annotations": {
            "argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/hook-delete-policy": "HookSucceeded",
            "emulator.gitops.dev/job-duration": "0.3",
            "emulator.gitops.dev/job-result": result}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "busybox", "command": ["true"]}]}}},
    }


def source(root: Path, result: str, value: str) -> None:
    root.mkdir(exist_ok=True)
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hooks"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "app", "namespace": "hooks"}, "data": {"value": value}},
            job(result)]
    (root / "app.yaml").write_text(yaml.safe_dump_all(docs))


def configmap_value(emulator: KubeEmulator) -> str | None:
    found = emulator.objects(kind="ConfigMap")
    for obj in found:
        meta = obj.get("metadata", {})
        if meta.get("namespace") == "hooks" and meta.get("name") == "app":
            return str(obj["data"]["value"])
    return None


def test_a_presync_hook_job_gates_the_sync(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    src = tmp_path / "src"
    source(src, "Succeeded", "1")
    app = Application.model_validate({
        "metadata": {"name": "hooked", "namespace": "team"},
        "spec": {"source": {"url": f"dir:{src}"},
                 "target": {"url": "k8s:",
                            "options": {"kubeconfig": str(kube_emulator.kubeconfig_path)}},
                 "wait": {"timeout": "20s"}}})
    runner = AppReconciler(app, MemoryStatusStore())
    try:
        outcome = runner.reconcile("start")
        assert not outcome.failed, outcome.status.message
        assert configmap_value(kube_emulator) == "1"
        jobs = [j for j in kube_emulator.objects(kind="Job")
                if j["metadata"]["name"].startswith("migrate-")]
        assert jobs == []  # HookSucceeded: deleted once it completed
        assert outcome.status.counts["created"] == 2  # the Namespace and the ConfigMap

        source(src, "Failed", "2")
        failed = runner.reconcile("interval")
        assert failed.failed and failed.reasons[-1] == "SyncFailed"
        assert "PreSync hook" in failed.status.message and "migrate-" in failed.status.message
        assert configmap_value(kube_emulator) == "1"  # nothing applied after the failed hook
        assert failed.status.health != "Degraded"  # a failed hook is not the app's health
        assert failed.status.history[-1].result == "Failed"
    finally:
        runner.close()
