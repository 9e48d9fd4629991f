"""The kopf example (examples/kopf-operator/) end to end on the API emulator.

``kopf run examples/kopf-operator/operator.py --standalone`` runs as a subprocess with
KUBECONFIG on the emulator; the real kubectl applies crd.yaml and the Environment. The
Environment's objects are created, its status written (conditions, revision, resources),
a spec change is applied at once, drift is healed every ``interval`` (not while
suspended), and deleting the
Environment prunes its objects and releases the finalizer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import kubectl, needs_kubectl, wait_for

from gitops.sources.directory import DirectorySource
from gitops.testing.kube import KubeEmulator

pytest.importorskip("kopf")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kopf-operator"
KOPF = Path(sys.executable).parent / "kopf"
FINALIZER = "example.gitops.dev/prune"
ENVIRONMENTS = "/apis/example.gitops.dev/v1alpha1/namespaces/default/environments"

pytestmark = needs_kubectl


def get(emulator: KubeEmulator, path: str) -> dict[str, Any] | None:
    """GET an API path as JSON; None on 404."""
    try:
        with urllib.request.urlopen(emulator.url + path, timeout=5) as answer:
            found: dict[str, Any] = json.load(answer)
            return found
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def configmaps(emulator: KubeEmulator) -> dict[str, dict[str, str]]:
    listed = get(emulator, "/api/v1/namespaces/default/configmaps") or {"items": []}
    return {o["metadata"]["name"]: o.get("data", {}) for o in listed["items"]
            if not o["metadata"]["name"].startswith("kube-")}


def write_source(root: Path, data: dict[str, dict[str, str]]) -> str:
    """A folder of ConfigMaps (name -> data); returns its revision."""
    root.mkdir(exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for name, values in data.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": values}))
    with DirectorySource(root) as source:
        return source.resolve()


def environment(source: Path, interval: int, *, suspend: bool = False) -> str:
    return yaml.safe_dump({
        "apiVersion": "example.gitops.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"source": f"dir:{source}", "prune": True, "interval": interval,
                 "suspend": suspend},
    })


def condition(env: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in env.get("status", {}).get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


@pytest.fixture
def operator(kube_emulator: KubeEmulator, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The example operator, as its README starts it, against the emulator with the CRD."""
    if not KOPF.exists() and shutil.which("kopf") is None:
        pytest.skip("kopf is not installed")
    kubectl(kube_emulator, "apply", "--server-side", "-f", str(EXAMPLE / "crd.yaml"))
    env = {**os.environ, "KUBECONFIG": str(kube_emulator.kubeconfig_path),
           "PYTHONPATH": str(ROOT), "GITOPS_TICK": "0.2", "HOME": str(tmp_path),
           "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "kopf.log").open("w")
    process = subprocess.Popen(
        [str(KOPF) if KOPF.exists() else "kopf", "run", str(EXAMPLE / "operator.py"),
         "--standalone"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if process.returncode not in (0, -15):
            print((tmp_path / "kopf.log").read_text()[-5000:])


def test_an_environment_is_reconciled_end_to_end(
    kube_emulator: KubeEmulator, operator: subprocess.Popen[str], tmp_path: Path
) -> None:
    first = write_source(tmp_path / "v1", {"settings": {"mode": "one"}, "extra": {"x": "1"}})

    kubectl(kube_emulator, "apply", "-f", "-", stdin=environment(tmp_path / "v1", 3600))
    wait_for(lambda: configmaps(kube_emulator).keys() == {"settings", "extra"}, 15,
             "the Environment's objects")

    def ready() -> dict[str, Any] | None:
        env = get(kube_emulator, f"{ENVIRONMENTS}/shop")
        return env if env and condition(env, "Ready").get("status") == "True" else None

    env = wait_for(ready, 10, "Ready=True")
    status = env["status"]
    assert status["revision"] == first
    assert condition(env, "Reconciling")["status"] == "False"
    assert condition(env, "Ready")["reason"] == "Succeeded"
    assert sorted((r["kind"], r["name"], r["action"], r["outcome"]) for r in status["resources"]) \
        == [("ConfigMap", "extra", "create", "succeeded"),
            ("ConfigMap", "settings", "create", "succeeded")]
    assert FINALIZER in env["metadata"]["finalizers"]
    log = (tmp_path / "kopf.log").read_text()  # Reconciling=True was written before the sync
    assert log.index("Handler 'mark_reconciling' succeeded") < log.index("Planned: 2 changes")

    # a spec change (another source) is applied at once, well before the hour's interval
    second = write_source(tmp_path / "v2", {"settings": {"mode": "two"}})
    kubectl(kube_emulator, "apply", "-f", "-", stdin=environment(tmp_path / "v2", 3600))
    wait_for(lambda: configmaps(kube_emulator) == {"settings": {"mode": "two"}}, 10,
             "the new source applied and the old object pruned")
    env = wait_for(lambda: (e := ready()) and e["status"]["revision"] == second and e, 10,
                   "the new revision in status")
    assert sorted((r["name"], r["action"]) for r in env["status"]["resources"]) == \
        [("extra", "delete"), ("settings", "update")]

    # with a short interval, drift made by hand is healed by the timer
    kubectl(kube_emulator, "apply", "-f", "-", stdin=environment(tmp_path / "v2", 1))
    kubectl(kube_emulator, "delete", "configmap", "settings", "-n", "default")
    wait_for(lambda: configmaps(kube_emulator) == {"settings": {"mode": "two"}}, 10,
             "drift healed by the interval")

    # suspended, it leaves drift alone (for longer than the interval); resumed, it heals it
    kubectl(kube_emulator, "apply", "-f", "-",
            stdin=environment(tmp_path / "v2", 1, suspend=True))
    wait_for(lambda: condition(get(kube_emulator, f"{ENVIRONMENTS}/shop") or {},
                               "Reconciling").get("reason") == "Suspended", 10, "Suspended")
    kubectl(kube_emulator, "delete", "configmap", "settings", "-n", "default")
    time.sleep(2.0)  # two intervals: a timer that ignored suspend would have healed it
    assert configmaps(kube_emulator) == {}
    kubectl(kube_emulator, "apply", "-f", "-", stdin=environment(tmp_path / "v2", 3600))
    wait_for(lambda: configmaps(kube_emulator) == {"settings": {"mode": "two"}}, 10,
             "resumed and applied at once")

    # deletion prunes everything, then the finalizer lets the Environment go
    kubectl(kube_emulator, "delete", "environment", "shop", "-n", "default", "--wait=false")
    wait_for(lambda: get(kube_emulator, f"{ENVIRONMENTS}/shop") is None, 10,
             "the Environment gone (finalizer released)")
    assert configmaps(kube_emulator) == {}
    assert operator.poll() is None, "the operator still runs"


def test_a_bad_source_is_a_status_condition_with_no_credentials(
    kube_emulator: KubeEmulator, operator: subprocess.Popen[str], tmp_path: Path
) -> None:
    """An unreachable source URL with a password: Ready=False naming the URL, no crash loop;
    the password is in no status, Event or log line."""
    secret = "s3cr3t-pw"
    doc = yaml.safe_load(environment(tmp_path, 3600))
    doc["spec"]["source"] = f"git+https://user:{secret}@127.0.0.1:9/shop.git@main"
    kubectl(kube_emulator, "apply", "-f", "-", stdin=yaml.safe_dump(doc))

    def failed() -> dict[str, Any] | None:
        env = get(kube_emulator, f"{ENVIRONMENTS}/shop")
        return env if env and condition(env, "Ready").get("status") == "False" else None

    env = wait_for(failed, 15, "Ready=False")
    ready = condition(env, "Ready")
    assert ready["reason"] == "ReconcileFailed"
    assert "git+https://127.0.0.1:9/shop.git" in ready["message"], ready
    # and a URL no plugin opens: the same, with its own message
    doc["spec"]["source"] = f"https://user:{secret}@127.0.0.1:9/shop"
    kubectl(kube_emulator, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    env = wait_for(lambda: (e := failed()) and "no source plugin" in
                   condition(e, "Ready")["message"] and e, 10, "the new error in status")
    time.sleep(0.5)  # a crash loop would show up as handler retries meanwhile
    assert operator.poll() is None, "the operator still runs"
    log = (tmp_path / "kopf.log").read_text()
    events = get(kube_emulator, "/api/v1/namespaces/default/events") or {"items": []}
    assert secret not in json.dumps(env["status"]), env["status"]
    assert secret not in json.dumps(events), events
    assert secret not in log, [line for line in log.splitlines() if secret in line]
    assert "Handler 'apply_now' failed" not in log, log[-3000:]


def test_the_sample_environment_works_as_the_readme_applies_it(
    kube_emulator: KubeEmulator, operator: subprocess.Popen[str]
) -> None:
    """``kubectl apply -f examples/kopf-operator/environment.yaml``, as written: Ready, with
    the bundled example's objects in the cluster."""
    kubectl(kube_emulator, "apply", "-f", str(EXAMPLE / "environment.yaml"))

    def ready() -> dict[str, Any] | None:
        env = get(kube_emulator, f"{ENVIRONMENTS}/shop")
        return env if env and condition(env, "Ready").get("status") == "True" else None

    env = wait_for(ready, 20, "the sample Environment Ready=True")
    kinds = {r["kind"] for r in env["status"]["resources"]}
    assert {"Namespace", "Deployment", "Service", "ConfigMap"} <= kinds, kinds
    assert get(kube_emulator, "/apis/apps/v1/namespaces/shop/deployments/shop") is not None
