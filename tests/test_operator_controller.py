"""``gitops controller`` against the API emulator, driven by the real ``kubectl``:
Application objects created by kubectl, status and printer columns read back with
``kubectl get``, Events, suspend/resume and rollback through ``--kubeconfig``, an invalid
Application reported as Stalled, and two replicas with ``--leader-elect`` and ``--shards 2``.
"""

from __future__ import annotations

import json
import os
import signal
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
from operator_support import kubectl, needs_kubectl, operator_emulator, wait_for

from gitops.cli import main
from gitops.operator.leader import shard_of
from gitops.testing.gitserver import WorkRepo, free_port
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]

pytestmark = needs_kubectl

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data: {{value: "{value}"}}
"""


def application(name: str, namespace: str, source: str, **spec: Any) -> str:
    return yaml.safe_dump({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"url": source}, "target": {"url": "k8s:"}, "interval": "1s",
                 "prune": True, **spec},
    })


class Controller:
    """A ``gitops controller`` process."""

    def __init__(self, emulator: KubeEmulator, tmp: Path, *args: str) -> None:
        assert emulator.kubeconfig_path is not None
        self.log = tmp / f"controller-{os.urandom(3).hex()}.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
             "controller", "--kubeconfig", str(emulator.kubeconfig_path),
             "--metrics-addr", "off", "--log-format", "json", *args],
            stdout=subprocess.DEVNULL, stderr=self._log,
            env={**os.environ, "GITOPS_CACHE_DIR": str(tmp / "cache")},
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def apps_synced(self) -> set[str]:
        return {line["app"] for line in self.lines()
                if line.get("reason") == "SyncSucceeded" and "app" in line}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=20)
        finally:
            self._log.close()
        return code


@pytest.fixture
def controllers(operator_emulator: KubeEmulator, tmp_path: Path) -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for c in started:
        c.stop(signal.SIGKILL)


def value_of(emulator: KubeEmulator, namespace: str, name: str) -> str | None:
    done = kubectl(emulator, "get", "configmap", name, "-n", namespace, "-o", "json",
                   check=False)
    if done.returncode != 0:
        return None
    return str(json.loads(done.stdout)["data"]["value"])


def app_object(emulator: KubeEmulator, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(emulator, "get", "applications.gitops.dev", name, "-n",
                                   namespace, "-o", "json").stdout))


def ensure_namespace(emulator: KubeEmulator, name: str) -> None:
    kubectl(emulator, "apply", "-f", "-",
            stdin=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")


def test_controller_reconciles_applications_and_reports(
        operator_emulator: KubeEmulator, controllers: list[Controller], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    emulator = operator_emulator
    ensure_namespace(emulator, "team")
    src = tmp_path / "src"
    src.mkdir()
    (src / "cm.yaml").write_text(CM.format(name="shop-config", namespace="team", value="1"))
    kubectl(emulator, "apply", "-f", "-", stdin=application("shop", "team", f"dir:{src}"))
    kubectl(emulator, "apply", "-f", "-",
            stdin=application("loop", "team", f"dir:{src}", dependsOn=["loop"]))
    controller = Controller(emulator, tmp_path, "--workers", "2")
    controllers.append(controller)

    wait_for(lambda: value_of(emulator, "team", "shop-config") == "1", 30, "the first sync")
    obj = wait_for(lambda: (o := app_object(emulator, "team", "shop")).get("status", {}).get(
        "health") == "Healthy" and o, 15, "the status")
    status = obj["status"]
    assert status["sync"] == "Synced" and status["lastAppliedRevision"].startswith("sha256:")
    assert status["lastAttemptedRevision"] == status["lastAppliedRevision"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == obj["metadata"][
        "generation"]
    assert [h["trigger"] for h in status["history"]] == ["start"]
    assert status["resources"] == 1

    table = kubectl(emulator, "get", "applications.gitops.dev", "-n", "team").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "SYNC", "HEALTH", "REVISION", "AGE"]
    shop = next(r.split() for r in rows if r.startswith("shop"))
    assert shop[1:3] == ["Synced", "Healthy"] and shop[3] == status["lastAppliedRevision"]

    # an Application the model refuses is Stalled, with a Warning event naming the problem
    loop = wait_for(lambda: (o := app_object(emulator, "team", "loop")).get("status") and o,
                    15, "the invalid application's status")
    stalled = next(c for c in loop["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and "depend on itself" in stalled["message"]
    events = kubectl(emulator, "get", "events", "-n", "team", "-o", "json").stdout
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in json.loads(events)["items"]}
    assert ("shop", "SyncSucceeded") in reasons and ("loop", "InvalidSpec") in reasons

    kc = str(emulator.kubeconfig_path)
    capsys.readouterr()
    assert main(["status", "--kubeconfig", kc, "-o", "json"]) == 1  # loop is not Ready
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)["applications"]}
    assert listed["shop"]["sync"] == "Synced" and listed["shop"]["health"] == "Healthy"

    # drift is healed by the controller (the target's watch sees it)
    kubectl(emulator, "patch", "configmap", "shop-config", "-n", "team", "--type", "merge",
            "-p", '{"data": {"value": "tampered"}}')
    wait_for(lambda: value_of(emulator, "team", "shop-config") == "1", 15, "self-heal")

    # suspended: drift stays; resumed: healed
    assert main(["suspend", "team/shop", "--kubeconfig", kc]) == 0
    assert app_object(emulator, "team", "shop")["spec"]["suspend"] is True
    kubectl(emulator, "patch", "configmap", "shop-config", "-n", "team", "--type", "merge",
            "-p", '{"data": {"value": "tampered"}}')
    time.sleep(2.5)  # more than two intervals: nothing may heal it while suspended
    assert value_of(emulator, "team", "shop-config") == "tampered"
    assert main(["resume", "shop", "--kubeconfig", kc]) == 0
    wait_for(lambda: value_of(emulator, "team", "shop-config") == "1", 15, "heal after resume")

    # a source change is applied; the Application's deletion stops its reconciles
    (src / "cm.yaml").write_text(CM.format(name="shop-config", namespace="team", value="2"))
    wait_for(lambda: value_of(emulator, "team", "shop-config") == "2", 15, "the new revision")
    history = app_object(emulator, "team", "shop")["status"]["history"]
    assert len(history) >= 2 and history[-1]["result"] == "Succeeded"
    assert controller.stop() == 0


def test_rollback_and_history_through_kubeconfig(operator_emulator: KubeEmulator,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    emulator = operator_emulator
    ensure_namespace(emulator, "roll")
    repo = WorkRepo(tmp_path / "repo", home=tmp_path / "home")
    repo.write({"cm.yaml": CM.format(name="rolled", namespace="roll", value="v1")})
    repo.commit("v1")
    kubectl(emulator, "apply", "-f", "-", stdin=application(
        "web", "roll", f"git+file://{repo.path}@main", interval="1h"))
    kc = str(emulator.kubeconfig_path)
    os.environ["GITOPS_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        assert main(["sync", "roll/web", "--kubeconfig", kc]) == 0
        first = app_object(emulator, "roll", "web")["status"]["lastAppliedRevision"]
        repo.write({"cm.yaml": CM.format(name="rolled", namespace="roll", value="v2")})
        repo.commit("v2")
        assert main(["sync", "web", "--kubeconfig", kc]) == 0
        assert value_of(emulator, "roll", "rolled") == "v2"
        capsys.readouterr()
        assert main(["history", "roll/web", "--kubeconfig", kc, "-o", "json"]) == 0
        history = json.loads(capsys.readouterr().out)["history"]
        assert [h["trigger"] for h in history] == ["manual", "manual"]
        assert main(["rollback", "web", first, "--kubeconfig", kc]) == 2  # selfHeal is on
        assert "--force" in capsys.readouterr().err
        assert main(["rollback", "web", first, "--kubeconfig", kc, "--force"]) == 0
        assert value_of(emulator, "roll", "rolled") == "v1"
        obj = app_object(emulator, "roll", "web")
        assert obj["spec"]["suspend"] is True
        assert obj["status"]["history"][-1]["trigger"] == "rollback"
        assert obj["status"]["lastAppliedRevision"] == first
    finally:
        del os.environ["GITOPS_CACHE_DIR"]


def lease_holder(emulator: KubeEmulator, name: str) -> str:
    done = kubectl(emulator, "get", "lease", name, "-n", "gitops-system", "-o", "json",
                   check=False)
    if done.returncode != 0:
        return ""
    return str(json.loads(done.stdout)["spec"].get("holderIdentity") or "")


def post(port: int, path: str, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"",
                                     headers={"Authorization": f"Bearer {token}"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:  # not listening yet
        return 0


def test_leader_election_hands_over_when_the_leader_dies(
        operator_emulator: KubeEmulator, controllers: list[Controller], tmp_path: Path) -> None:
    emulator = operator_emulator
    ensure_namespace(emulator, "gitops-system")
    ensure_namespace(emulator, "le")
    src = tmp_path / "src"
    src.mkdir()
    (src / "cm.yaml").write_text(CM.format(name="led", namespace="le", value="1"))
    kubectl(emulator, "apply", "-f", "-",
            stdin=application("led", "le", f"dir:{src}", interval="1h"))
    (tmp_path / "secret").write_text("token-123\n")
    ports = {"one": free_port(), "two": free_port()}
    args = ("--leader-elect", "--lease-duration", "2s", "--namespace", "le",
            "--webhook-secret-file", str(tmp_path / "secret"))
    one = Controller(emulator, tmp_path, *args, "--identity", "one",
                     "--webhook-addr", f"127.0.0.1:{ports['one']}")
    two = Controller(emulator, tmp_path, *args, "--identity", "two",
                     "--webhook-addr", f"127.0.0.1:{ports['two']}")
    controllers.extend([one, two])
    leader_name = wait_for(lambda: lease_holder(emulator, "gitops-controller"), 20, "a leader")
    wait_for(lambda: value_of(emulator, "le", "led") == "1", 30, "the leader's sync")
    leader, standby = (one, two) if leader_name == "one" else (two, one)
    assert "le/led" not in standby.apps_synced()

    # a webhook that lands on the standby is passed on to the leader
    (src / "cm.yaml").write_text(CM.format(name="led", namespace="le", value="hooked"))
    standby_port = ports[standby_name(leader_name)]
    wait_for(lambda: post(standby_port, "/hooks/apps/le/led", "token-123") == 202, 10,
             "the standby to know the application")
    wait_for(lambda: value_of(emulator, "le", "led") == "hooked", 10, "the leader's sync")
    assert "le/led" not in standby.apps_synced()
    history = app_object(emulator, "le", "led")["status"]["history"]
    assert history[-1]["trigger"] == "webhook"

    leader.stop(signal.SIGKILL)  # no release: the standby must wait out the lease
    (src / "cm.yaml").write_text(CM.format(name="led", namespace="le", value="2"))
    wait_for(lambda: lease_holder(emulator, "gitops-controller") == standby_name(leader_name),
             10, "the standby to take the lease")
    wait_for(lambda: value_of(emulator, "le", "led") == "2", 20, "the new leader's sync")
    assert standby.stop() == 0


def standby_name(leader: str) -> str:
    return "two" if leader == "one" else "one"


def test_two_shards_split_the_applications(operator_emulator: KubeEmulator,
                                           controllers: list[Controller],
                                           tmp_path: Path) -> None:
    emulator = operator_emulator
    ensure_namespace(emulator, "gitops-system")
    ensure_namespace(emulator, "sh")
    names = [f"app{i}" for i in range(6)]
    for name in names:
        src = tmp_path / name
        src.mkdir()
        (src / "cm.yaml").write_text(CM.format(name=name, namespace="sh", value="1"))
        kubectl(emulator, "apply", "-f", "-", stdin=application(name, "sh", f"dir:{src}"))
    args = ("--shards", "2", "--lease-duration", "2s", "--namespace", "sh")
    one = Controller(emulator, tmp_path, *args, "--identity", "one")
    two = Controller(emulator, tmp_path, *args, "--identity", "two")
    controllers.extend([one, two])
    wait_for(lambda: {lease_holder(emulator, f"gitops-controller-shard-{i}") for i in (0, 1)}
             == {"one", "two"}, 30, "one shard each")
    wait_for(lambda: all(value_of(emulator, "sh", n) == "1" for n in names), 30,
             "every application")
    # once split, each replica reconciles exactly the applications of its shard
    holders = {i: lease_holder(emulator, f"gitops-controller-shard-{i}") for i in (0, 1)}
    before = {c: len(c.lines()) for c in (one, two)}
    for name in names:
        (tmp_path / name / "cm.yaml").write_text(CM.format(name=name, namespace="sh", value="2"))
    wait_for(lambda: all(value_of(emulator, "sh", n) == "2" for n in names), 30,
             "every application's new revision")
    for controller, identity in ((one, "one"), (two, "two")):
        synced = {line["app"] for line in controller.lines()[before[controller]:]
                  if line.get("reason") == "SyncSucceeded"}
        assert synced == {f"sh/{n}" for n in names
                          if holders[shard_of(f"sh/{n}", 2)] == identity}
    one.stop(signal.SIGKILL)
    wait_for(lambda: {lease_holder(emulator, f"gitops-controller-shard-{i}") for i in (0, 1)}
             == {"two"}, 20, "the survivor to hold both shards")
    assert two.stop() == 0
