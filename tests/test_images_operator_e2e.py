"""Image automation end to end, with real parts only.

``gitops run -f apps.yaml`` as a process; a ``docker-registry`` holding ``app:1.0.0``
(pushed with gitops' own OCI push); a Git repository served by ``git daemon`` with
receive-pack, holding a Deployment whose image carries a setter marker; an Application
(``dir:`` target) from that repository, an ImagePolicy (semver ``^1``) and an
ImageUpdateAutomation with 1 s intervals. ``app:1.1.0`` is pushed: within an interval the
repository has exactly one new commit changing exactly the marked field, and the
``dir:`` target's Deployment runs ``HOST/app:1.1.0`` (the Application's own interval is an
hour: only the trigger after the push can deploy it that fast).

Then the same objects in the API emulator, watched by ``gitops controller``: the policy's
status subresource gets ``latestImage``, the automation pushes and records
``lastPushCommit`` and an ``ImageUpdated`` Event; a broken and an invalid policy are not
Ready and stop nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import kubectl, needs_kubectl, wait_for

from gitops.operator.crd import crds_yaml
from gitops.sources.oci import push
from gitops.testing.gitserver import GitDaemon, WorkRepo, free_port
from gitops.testing.kube import KubeEmulator
from gitops.testing.registry import LocalRegistry, registry_binary

INTERVAL = 1.0
REGISTRY_PASSWORD = "reg-S3cret-pw-41"  # basic auth: it must appear nowhere we write

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app   # the shop's front end
  namespace: default
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
        - name: app
          image: {host}/app:1.0.0 # {{"$imagepolicy": "default:app"}}
          ports: [{{containerPort: 8080}}]
        - name: sidecar
          image: {host}/sidecar:1.0.0
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = registry_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is not installed")
        pytest.skip("docker-registry is not installed")
    started = LocalRegistry(tmp_path_factory.mktemp("registry"), binary=binary,
                            auth="htpasswd", password=REGISTRY_PASSWORD).start()
    yield started
    started.stop()


def push_tag(registry: LocalRegistry, tmp: Path, tag: str) -> None:
    content = tmp / f"content-{tag}"
    content.mkdir(exist_ok=True)
    (content / "version").write_text(tag)
    push(content, f"oci://{registry.host}/app:{tag}", username=registry.username,
         password=registry.password)


def policy_doc(registry: LocalRegistry, name: str = "app") -> dict[str, Any]:
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": f"{registry.host}/app", "policy": {"semver": {"range": "^1"}},
                     "interval": "1s", "options": {"username": registry.username,
                                                   "password": registry.password}}}


class ConfigRepo:
    """The configuration repository, served by ``git daemon`` with receive-pack."""

    def __init__(self, tmp: Path, host: str) -> None:
        served = tmp / "served"
        served.mkdir()
        self.bare = served / "config.git"
        self.work = WorkRepo(tmp / "work", home=tmp / "home")
        self.deployment = DEPLOYMENT.format(host=host)
        self.work.write({"deploy/app.yaml": self.deployment, "README.md": "config\n"})
        self.first = self.work.commit("first")
        self.work.push(self.bare)
        self.daemon = GitDaemon(served, receive_pack=True).start()
        self.url = self.daemon.url("config.git")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.bare), *args], capture_output=True,
                              text=True, check=True, env=self.work.env).stdout

    def head(self) -> str:
        return self.git("rev-parse", "refs/heads/main").strip()


def automation_doc(url: str) -> dict[str, Any]:
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ImageUpdateAutomation",
            "metadata": {"name": "images", "namespace": "default"},
            "spec": {"interval": "1s", "git": {
                "url": url, "checkout": {"ref": {"branch": "main"}},
                "commit": {"author": {"name": "Image Bot", "email": "bot@example.com"}}},
                "update": {"path": "./deploy"}}}


class Run:
    """A ``gitops run`` process and what it works on."""

    def __init__(self, tmp: Path, registry: LocalRegistry) -> None:
        self.tmp, self.host = tmp, registry.host
        self.repo = ConfigRepo(tmp, registry.host)
        self.deployment, self.first = self.repo.deployment, self.repo.first
        self.git, self.head, self.daemon = self.repo.git, self.repo.head, self.repo.daemon
        url = self.repo.url
        self.out = tmp / "out"
        docs = [
            {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
             "metadata": {"name": "shop", "namespace": "default"},
             "spec": {"source": {"url": f"{url}@main#path=deploy"},
                      "target": {"url": f"dir:{self.out}"}, "interval": "1h"}},
            policy_doc(registry),
            automation_doc(url),
        ]
        self.apps = tmp / "apps.yaml"
        self.apps.write_text(yaml.safe_dump_all(docs))
        self.metrics_port = free_port()
        self.env = {**os.environ, "GITOPS_CACHE_DIR": str(tmp / "cache")}
        self.log = (tmp / "run.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
             "run", "-f", str(self.apps), "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
             "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=self.env)

    def deployed_images(self) -> list[str] | None:
        path = self.out / "default" / "Deployment.apps" / "app.yaml"
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(doc, dict):
            return None
        return [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]

    def status(self) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
             "status", "-f", str(self.apps), "-o", "json"],
            capture_output=True, text=True, env=self.env, check=False)
        return dict(json.loads(done.stdout))

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        finally:
            self.log.close()
            self.daemon.stop()

    def logs(self) -> str:
        return (self.tmp / "run.log").read_text(errors="replace")


@pytest.fixture
def run(tmp_path: Path, registry: LocalRegistry) -> Iterator[Run]:
    push_tag(registry, tmp_path, "1.0.0")
    push_tag(registry, tmp_path, "2.0.0")  # outside the range: never chosen
    started = Run(tmp_path, registry)
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.wait()
        started.daemon.stop()


def test_a_pushed_tag_is_committed_once_and_deployed_within_an_interval(
        run: Run, registry: LocalRegistry, tmp_path: Path) -> None:
    host = run.host
    wait_for(lambda: run.deployed_images() == [f"{host}/app:1.0.0", f"{host}/sidecar:1.0.0"],
             15, "the first sync")
    wait_for(lambda: any(p.get("latestImage") == f"{host}/app:1.0.0"
                         for p in run.status().get("imagePolicies", [])), 10,
             "the policy's first choice")
    assert run.head() == run.first  # 1.0.0 is what the repository says: nothing to commit

    push_tag(registry, tmp_path, "1.1.0")
    pushed = time.monotonic()
    wait_for(lambda: run.deployed_images() == [f"{host}/app:1.1.0", f"{host}/sidecar:1.0.0"],
             10, "1.1.0 deployed")
    took = time.monotonic() - pushed
    # one policy interval to see the tag (±10 % jitter), then commit, push and a sync at once
    assert took < 2.5 * INTERVAL + 2.0, f"deployed {took:.1f}s after the push"

    head = run.head()
    assert run.git("rev-list", f"{run.first}..{head}").split() == [head]  # exactly one commit
    assert run.git("diff", "--name-only", run.first, head).split() == ["deploy/app.yaml"]
    expected = run.deployment.replace(f"{host}/app:1.0.0 #", f"{host}/app:1.1.0 #")
    assert expected != run.deployment
    assert run.git("show", f"{head}:deploy/app.yaml") == expected  # byte for byte
    author = run.git("log", "-1", "--format=%an <%ae>", head).strip()
    assert author == "Image Bot <bot@example.com>"

    status = run.status()
    [policy] = status["imagePolicies"]
    assert (policy["latestImage"], policy["latestTag"], policy["ready"]) == (
        f"{host}/app:1.1.0", "1.1.0", True)
    [automation] = status["imageUpdateAutomations"]
    assert automation["lastPushCommit"] == head and automation["ready"]
    assert automation["lastPushTime"] is not None
    metrics = run.metrics()
    assert ('gitops_image_update_total{automation="default/images",result="pushed"} 1.0'
            in metrics)
    assert (f'gitops_image_policy_latest_info{{image="{host}/app",policy="default/app",'
            'tag="1.1.0"} 1.0') in metrics

    time.sleep(2.5 * INTERVAL)  # more runs of both: still one commit
    assert run.head() == head
    assert run.stop() == 0
    lines = [json.loads(line) for line in run.logs().splitlines() if line.startswith("{")]
    assert any(line.get("reason") == "ImageUpdated" for line in lines)
    written = [run.logs(), json.dumps(status), metrics, run.git("log", "--format=%B", "main"),
               *(p.read_text() for p in (tmp_path / "cache" / "image-status").rglob("*.json"))]
    assert all(REGISTRY_PASSWORD not in text for text in written)


# -- gitops controller ----------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, registry: LocalRegistry) -> Iterator[ConfigRepo]:
    served = ConfigRepo(tmp_path, registry.host)
    yield served
    served.daemon.stop()


@needs_kubectl
def test_the_controller_writes_latest_image_into_the_status_subresource(
        registry: LocalRegistry, repo: ConfigRepo, tmp_path: Path) -> None:
    push_tag(registry, tmp_path, "1.0.0")
    push_tag(registry, tmp_path, "1.1.0")
    with KubeEmulator() as emulator:
        kubectl(emulator, "apply", "--server-side", "-f", "-", stdin=crds_yaml())
        bad = policy_doc(registry, "broken")
        bad["spec"]["image"] = f"127.0.0.1:{free_port()}/nothing"  # no registry there
        invalid = policy_doc(registry, "invalid")
        invalid["spec"]["policy"]["alphabetical"] = {"order": "asc"}  # two orderings
        kubectl(emulator, "apply", "-f", "-",
                stdin=yaml.safe_dump_all([policy_doc(registry), bad, invalid,
                                          automation_doc(repo.url)]))
        assert emulator.kubeconfig_path is not None
        log = (tmp_path / "controller.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
             "controller", "--kubeconfig", str(emulator.kubeconfig_path),
             "--metrics-addr", "off", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "GITOPS_CACHE_DIR": str(tmp_path / "cache")})
        try:
            def status(name: str) -> dict[str, Any]:
                done = kubectl(emulator, "get", "imagepolicies.gitops.dev", name, "-n",
                               "default", "-o", "json")
                return dict(json.loads(done.stdout).get("status") or {})

            found = wait_for(lambda: status("app").get("latestImage") and status("app"), 15,
                             "latestImage in the status subresource")
            assert found["latestImage"] == f"{registry.host}/app:1.1.0"
            assert found["latestTag"] == "1.1.0"
            [ready] = found["conditions"]
            assert (ready["type"], ready["status"]) == ("Ready", "True")
            assert found["observedGeneration"] == 1
            broken = wait_for(lambda: status("broken").get("conditions") and status("broken"),
                              15, "the broken policy's status")
            assert broken["conditions"][0]["status"] == "False"
            assert broken["conditions"][0]["reason"] == "ScanFailed"
            assert "/nothing" in broken["message"]
            refused = wait_for(lambda: status("invalid").get("conditions") and
                               status("invalid"), 15, "the invalid policy's status")
            assert refused["conditions"][0]["reason"] == "InvalidSpec"
            assert "exactly one of semver" in refused["message"]
            table = kubectl(emulator, "get", "imagepolicies.gitops.dev", "-n", "default").stdout
            assert f"{registry.host}/app:1.1.0" in table

            def automation() -> dict[str, Any]:
                done = kubectl(emulator, "get", "imageupdateautomations.gitops.dev", "images",
                               "-n", "default", "-o", "json")
                return dict(json.loads(done.stdout).get("status") or {})

            pushed = wait_for(lambda: automation().get("lastPushCommit") and automation(), 15,
                              "lastPushCommit in the automation's status")
            assert pushed["lastPushCommit"] == repo.head() != repo.first
            assert repo.git("rev-list", f"{repo.first}..main").split() == [repo.head()]
            assert f"{registry.host}/app:1.1.0 #" in repo.git("show", "main:deploy/app.yaml")
            events = json.loads(kubectl(emulator, "get", "events", "-n", "default",
                                        "-o", "json").stdout)["items"]
            assert any(e["reason"] == "ImageUpdated" and
                       e["involvedObject"]["kind"] == "ImageUpdateAutomation" and
                       e["involvedObject"]["name"] == "images" for e in events)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
            log.close()
        logged = (tmp_path / "controller.log").read_text()
        assert code == 0, logged[-2000:]
        assert REGISTRY_PASSWORD not in logged + json.dumps([found, broken])
