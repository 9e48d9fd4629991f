"""A fleet end to end: two API emulators as two clusters (one kubeconfig, contexts ``staging``
and ``prod``), a repository with ``apps/*`` folders on ``git daemon``, and ``gitops run -f``
as a real process reading an ApplicationSet; ``gitops rollout status`` from another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from appsets_support import deployment
from operator_support import operator_emulator, wait_for

from gitops.appsets.cluster import ClusterRollouts
from gitops.appsets.rollout import Halt, RolloutState
from gitops.appsets.spec import ApplicationSet
from gitops.cli import main
from gitops.operator.kubeapi import OperatorAPI
from gitops.testing.gitserver import GitDaemon, WorkRepo
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]  # a fixture (the Application and ApplicationSet CRDs applied)

ROOT = Path(__file__).resolve().parent.parent
CLUSTERS = ("staging", "prod")

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{cluster: "${{CLUSTER}}", folder: {name}}}
"""



class Fleet:
    """Two emulators, their kubeconfig, a repository served by git daemon, a folder of files."""

    def __init__(self, root: Path, emulators: dict[str, KubeEmulator], daemon: GitDaemon) -> None:
        self.root = root
        self.emulators = emulators
        self.work = WorkRepo(root / "work", home=root)
        self.bare = root / "served" / "fleet.git"
        self.url = daemon.url("fleet.git")
        self.kubeconfig = root / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": n, "cluster": {"server": e.url}} for n, e in emulators.items()],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in emulators],
            "current-context": "staging"}))
        self.kubeconfig.chmod(0o600)
        self.declared = root / "fleet.yaml"

    def publish(self, files: dict[str, str]) -> str:
        self.work.replace(files)
        sha = self.work.commit("fleet")
        self.work.push(self.bare)
        return sha

    def configmaps(self, cluster: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o.get("data") or {} for o in self.emulators[cluster].objects(
            kind="ConfigMap", namespace="default") if "folder" in (o.get("data") or {})}

    def image(self, cluster: str) -> str | None:
        found = self.emulators[cluster].objects(kind="Deployment", namespace="default")
        return found[0]["spec"]["template"]["spec"]["containers"][0]["image"] if found else None

    def phase(self) -> str:
        """The rollout's phase, as the state file ``gitops run`` keeps says."""
        path = self.root / ".gitops" / "appsets" / "team_fleet.json"
        return str(json.loads(path.read_text())["phase"]) if path.exists() else ""

    def gitops(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gitops.cli", *args], capture_output=True,
                              text=True, timeout=30, env=self.env, check=False)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "GITOPS_CACHE_DIR": str(self.root / "cache")}

    def run(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "gitops.cli", "run", "-f", str(self.declared),
             "--metrics-addr", "off", "--reload-interval", "0.2", *extra],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "run.log", "w"),
            text=True, env=self.env)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    (tmp_path / "served").mkdir()
    with KubeEmulator() as staging, KubeEmulator() as prod, \
            GitDaemon(tmp_path / "served").start() as daemon:
        yield Fleet(tmp_path, {"staging": staging, "prod": prod}, daemon)


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def appset(fleet: Fleet, *, rolling: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "generators": [{"matrix": {"generators": [
            {"git": {"url": f"{fleet.url}@main", "directories": [{"path": "apps/*"}]}},
            {"clusters": {"kubeconfig": str(fleet.kubeconfig)}}]}}],
        "template": {
            "metadata": {"name": "{{path.basename}}-{{name}}", "labels": {"env": "{{name}}"}},
            "spec": {"source": {"url": f"{fleet.url}@main#path={{{{path}}}}"},
                     "target": {"url": "{{target}}"}, "interval": "1h", "prune": True,
                     "substitute": {"CLUSTER": "{{name}}"},
                     "retry": {"limit": 1, "backoff": "200ms"}}},
        "interval": "300ms",
    }
    if rolling:
        spec["strategy"] = {"type": "RollingSync", "rollingSync": {"steps": [
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]},
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}]}}
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "fleet", "namespace": "team"}, "spec": spec}


def test_folders_times_clusters_come_and_go_with_a_per_cluster_parameter(
        fleet: Fleet, stopped: list[subprocess.Popen[str]]) -> None:
    fleet.publish({f"apps/{n}/cm.yaml": CONFIGMAP.format(name=n) for n in ("web", "api")})
    fleet.declared.write_text(yaml.safe_dump(appset(fleet, rolling=False)))
    stopped.append(fleet.run())
    for cluster in CLUSTERS:
        wait_for(lambda c=cluster: set(fleet.configmaps(c)) == {"web", "api"}, 20,  # type: ignore[misc]
                 f"web and api on {cluster}")
        assert {d["cluster"] for d in fleet.configmaps(cluster).values()} == {cluster}, \
            "the per-cluster parameter is in the objects"

    fleet.publish({f"apps/{n}/cm.yaml": CONFIGMAP.format(name=n) for n in ("web", "api", "db")})
    for cluster in CLUSTERS:
        wait_for(lambda c=cluster: "db" in fleet.configmaps(c), 15,  # type: ignore[misc]
                 f"db on {cluster}")
    fleet.publish({f"apps/{n}/cm.yaml": CONFIGMAP.format(name=n) for n in ("web", "db")})
    for cluster in CLUSTERS:
        wait_for(lambda c=cluster: set(fleet.configmaps(c)) == {"web", "db"}, 15,  # type: ignore[misc]
                 f"api pruned from {cluster}")
        wait_for(lambda c=cluster: not any("-api-" in o["metadata"]["name"] for o in  # type: ignore[misc]
                                           fleet.emulators[c].objects(
                                               kind="ConfigMap", namespace="gitops-system")),
                 5, f"api's inventory and status record deleted from {cluster}")
    assert "Traceback" not in (fleet.root / "run.log").read_text()


class Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Hooks.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def hooks() -> Iterator[str]:
    Hooks.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_commit_reaches_prod_only_after_staging_and_a_degraded_one_never_does(
        fleet: Fleet, stopped: list[subprocess.Popen[str]], hooks: str) -> None:
    fleet.publish({"apps/web/deploy.yaml": deployment("1", "complete")})
    fleet.declared.write_text(yaml.safe_dump(appset(fleet, rolling=True)))
    stopped.append(fleet.run("--notify", hooks))
    wait_for(lambda: fleet.image("prod") == "web:1", 20, "v1 in prod")
    wait_for(lambda: fleet.phase() == "Complete", 10, "v1 complete")

    fleet.publish({"apps/web/deploy.yaml": deployment("2", "complete")})
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        for cluster in CLUSTERS:
            if cluster not in seen and fleet.image(cluster) == "web:2":
                seen[cluster] = time.monotonic()
        time.sleep(0.01)
    assert set(seen) == set(CLUSTERS), seen
    assert seen["staging"] < seen["prod"], "prod got the commit before staging"

    bad = fleet.publish({"apps/web/deploy.yaml": deployment("3", "failed")})
    wait_for(lambda: fleet.image("staging") == "web:3", 15, "v3 in staging")

    wait_for(lambda: fleet.phase() == "Halted", 20, "the rollout halted")
    done = fleet.gitops("rollout", "status", "fleet", "-f", str(fleet.declared), "-o", "json")
    shown = json.loads(done.stdout)
    assert done.returncode == 1 and shown["phase"] == "Halted"
    assert shown["holding"] == "team/web-staging"
    assert shown["halted"]["revision"].endswith(bad) and "Degraded" in shown["message"]
    time.sleep(1.0)  # three intervals of the set: prod keeps the good commit
    assert fleet.image("prod") == "web:2"
    text = fleet.gitops("rollout", "status", "fleet", "-f", str(fleet.declared))
    assert text.returncode == 1 and "Halted" in text.stdout
    assert "stopped by: team/web-staging" in text.stdout
    wait_for(lambda: any(h["reason"] == "RolloutHalted" and h["app"] == "team/fleet"
                         for h in Hooks.received), 10, "a RolloutHalted notification")


# -- in a cluster: gitops controller and ApplicationSet objects -----------------------------

SETS = "/apis/gitops.dev/v1alpha1/namespaces/team/applicationsets"
APPS = "/apis/gitops.dev/v1alpha1/namespaces/team/applications"


def test_the_controller_owns_generated_application_objects(
        operator_emulator: KubeEmulator, tmp_path: Path,
        stopped: list[subprocess.Popen[str]]) -> None:
    emulator = operator_emulator
    for name in ("web", "api"):
        folder = tmp_path / "src" / name
        folder.mkdir(parents=True)
        (folder / "cm.yaml").write_text(CONFIGMAP.replace("${CLUSTER}", "in-cluster")
                                        .format(name=f"cm-{name}"))
    emulator.expect_ok("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})

    def the_set(*names: str) -> dict[str, Any]:
        return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
                "metadata": {"name": "fleet", "namespace": "team"},
                "spec": {"generators": [{"list": {"elements": [{"app": n} for n in names]}}],
                         "template": {"metadata": {"name": "{{app}}"},
                                      "spec": {"source": {"url": f"dir:{tmp_path}/src/{{{{app}}}}"},
                                               "target": {"url": "k8s:"}, "interval": "1h",
                                               "prune": True}},
                         "interval": "1h"}}

    created = emulator.expect_ok("POST", SETS, the_set("web", "api"))
    assert emulator.kubeconfig_path is not None
    process = subprocess.Popen(
        [sys.executable, "-m", "gitops.cli", "controller", "--kubeconfig",
         str(emulator.kubeconfig_path), "--metrics-addr", "off"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "controller.log", "w"),  # noqa: SIM115
        env={**os.environ, "PYTHONPATH": str(ROOT), "GITOPS_CACHE_DIR": str(tmp_path / "cache")})
    stopped.append(process)  # type: ignore[arg-type]

    def apps() -> dict[str, dict[str, Any]]:
        status, body = emulator.request("GET", APPS)
        return {o["metadata"]["name"]: o for o in body.get("items") or []} if status == 200 else {}

    def configmaps() -> set[str]:
        return {o["metadata"]["name"] for o in emulator.objects(kind="ConfigMap",
                                                                namespace="default")
                if o["metadata"]["name"].startswith("cm-")}

    wait_for(lambda: set(apps()) == {"web", "api"}, 20, "two Application objects")
    web = apps()["web"]
    assert web["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert web["metadata"]["annotations"]["gitops.dev/application-set"] == "team/fleet"
    wait_for(lambda: configmaps() == {"cm-web", "cm-api"}, 20, "their objects applied")

    emulator.expect_ok("PATCH", f"{APPS}/web", {"spec": {"interval": "5m"}},
                       content_type="application/merge-patch+json")  # edited by hand
    wait_for(lambda: apps()["web"]["spec"]["interval"] == "1h0m0s", 10, "the edit put back")

    current = emulator.expect_ok("GET", f"{SETS}/fleet")
    broken = the_set("web")
    broken["spec"]["generators"] = [{"list": {}, "git": {}}]  # two keys: invalid
    current = emulator.expect_ok("PUT", f"{SETS}/fleet", {**broken,
                                                          "metadata": current["metadata"]})
    time.sleep(1.5)  # a tick and more: an invalid edit keeps the last valid spec
    assert set(apps()) == {"web", "api"} and configmaps() == {"cm-web", "cm-api"}
    emulator.expect_ok("PUT", f"{SETS}/fleet", {**the_set("web"),
                                                "metadata": current["metadata"]})
    wait_for(lambda: set(apps()) == {"web"}, 10, "api's Application deleted")
    wait_for(lambda: configmaps() == {"cm-web"}, 10, "api's objects pruned")
    assert "Traceback" not in (tmp_path / "controller.log").read_text()


def test_rollout_status_and_resume_of_an_applicationset_object(
        operator_emulator: KubeEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator = operator_emulator
    assert emulator.kubeconfig_path is not None
    kubeconfig = str(emulator.kubeconfig_path)
    emulator.expect_ok("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "roll"}})
    document = {"apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
                "metadata": {"name": "web", "namespace": "roll"},
                "spec": {"generators": [{"list": {"elements": [{"env": "staging"}]}}],
                         "template": {"metadata": {"name": "web-{{env}}"},
                                      "spec": {"source": {"url": "git+http://h/r.git"},
                                               "target": {"url": "k8s:"}}},
                         "strategy": {"rollingSync": {"steps": [{"matchExpressions": [
                             {"key": "env", "operator": "Exists"}]}]}}}}
    emulator.expect_ok("POST", "/apis/gitops.dev/v1alpha1/namespaces/roll/applicationsets",
                       document)
    api = OperatorAPI.from_kubeconfig(kubeconfig)
    appset = ApplicationSet.model_validate(document)
    halt = Halt(application="roll/web-staging", revision="main@sha1:" + "b" * 40, step=1,
                message="halted at step 1: roll/web-staging is Degraded")
    try:
        capsys.readouterr()
        assert main(["rollout", "status", "roll/web", "--kubeconfig", kubeconfig]) == 1
        said = capsys.readouterr().out  # in a cluster, the controller keeps the rollout
        assert "gitops controller has not evaluated" in said and "gitops run" not in said
        ClusterRollouts(api).update(appset, lambda _: RolloutState(
            revision=halt.revision, phase="Halted", step=1, steps=1, holding=halt.application,
            halted=halt, message=halt.message))
        capsys.readouterr()
        assert main(["rollout", "status", "roll/web", "--kubeconfig", kubeconfig,
                     "-o", "json"]) == 1
        shown = json.loads(capsys.readouterr().out)
        assert shown["phase"] == "Halted" and shown["holding"] == "roll/web-staging"
        assert main(["rollout", "resume", "roll/web", "--kubeconfig", kubeconfig]) == 0
        said = capsys.readouterr().out
        assert "resume requested" in said and "gitops controller goes on" in said, said
        state = ClusterRollouts(api).read(appset)
        assert state is not None and state.resume_requested
        assert main(["rollout", "status", "roll/nope", "--kubeconfig", kubeconfig]) == 2
    finally:
        api.close()


def test_fields_labels_and_annotations_added_by_hand_are_taken_away(
        operator_emulator: KubeEmulator) -> None:
    """Server-side apply leaves what another field manager added (``kubectl patch``): the
    set puts the generated Application back, additions included."""
    from gitops.apps import Application
    from gitops.appsets.cluster import ClusterSink
    from gitops.operator import Operator
    from gitops.operator.cluster import ClusterStatusStore

    emulator = operator_emulator
    emulator.expect_ok("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edit"}})
    apps = "/apis/gitops.dev/v1alpha1/namespaces/edit/applications"
    api = OperatorAPI.from_kubeconfig(str(emulator.kubeconfig_path))
    store = ClusterStatusStore(api)
    owner = {"metadata": {"name": "fleet", "namespace": "edit", "uid": "u-1"}}
    sink = ClusterSink(api, store, Operator(store), lambda _key: owner)
    app = Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "edit", "labels": {"env": "a"},
                     "annotations": {"gitops.dev/application-set": "edit/fleet"}},
        "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}})
    try:
        sink.publish([], {"edit/fleet": {app.key: app}})
        store.seen(emulator.expect_ok("PATCH", f"{apps}/web", {
            "metadata": {"labels": {"mine": "yes"},
                         "annotations": {"gitops.dev/requested-at": "now", "note": "x"}},
            "spec": {"wait": {"timeout": "1m"}, "prune": True}},
            content_type="application/merge-patch+json"))  # edited by hand
        sink.publish([], {"edit/fleet": {app.key: app}})
        live = emulator.expect_ok("GET", f"{apps}/web")
        assert "wait" not in live["spec"] and live["spec"]["prune"] is False
        assert live["metadata"]["labels"] == {"env": "a"}
        assert live["metadata"]["annotations"] == {"gitops.dev/application-set": "edit/fleet",
                                                   "gitops.dev/requested-at": "now"}, \
            "a sync request (gitops sync) is not a hand edit"
    finally:
        api.close()


def test_applications_a_set_owns_in_another_namespace_are_found_after_a_restart(
        operator_emulator: KubeEmulator) -> None:
    """A template may put Applications in another namespace than the set's: after a
    restart they are still the set's (so a folder removed meanwhile deletes its own)."""
    from gitops.appsets.cluster import ClusterSink
    from gitops.operator import Operator
    from gitops.operator.cluster import ClusterStatusStore

    emulator = operator_emulator
    for namespace in ("owner", "elsewhere"):
        emulator.expect_ok("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    emulator.expect_ok("POST", "/apis/gitops.dev/v1alpha1/namespaces/elsewhere/applications", {
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "elsewhere",
                     "annotations": {"gitops.dev/application-set": "owner/fleet"}},
        "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}})
    api = OperatorAPI.from_kubeconfig(str(emulator.kubeconfig_path))
    store = ClusterStatusStore(api)
    sink = ClusterSink(api, store, Operator(store), lambda _key: None)
    appset = ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "owner"},
        "spec": {"generators": [{"list": {"elements": []}}],
                 "template": {"metadata": {"name": "web", "namespace": "elsewhere"},
                              "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}}}})
    try:
        assert set(sink.owned(appset)) == {"elsewhere/web"}
    finally:
        api.close()
