"""Image automation in the operator (gitops.images.automation, status, report, controller CRDs).

The runner is driven with recording stand-ins for the registry scan and the Git update,
passed through its ``latest``/``update`` seams, so scheduling, status, metrics,
notifications and the trigger of applications are checked fast and exactly; the real
scan and push run in tests/test_images_operator_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import wait_for
from prometheus_client import CollectorRegistry, generate_latest
from structural_schema import structural_problems

from gitops.apps.load import load_declarations
from gitops.apps.spec import Application
from gitops.cli import main
from gitops.errors import InputError, SourceError
from gitops.images.automation import ImageAutomation, git_credentials, pushed_event
from gitops.images.controller import image_crds, image_object
from gitops.images.gitpush import UpdateResult
from gitops.images.latest import LatestImage
from gitops.images.metrics import ImageMetrics
from gitops.images.setters import FileUpdate, SetterChange
from gitops.images.spec import ImagePolicy, ImageUpdateAutomation
from gitops.images.status import (
    AUTOMATION_KIND,
    POLICY_KIND,
    AutomationStatus,
    FileImageStatusStore,
    ImagePolicyStatus,
)
from gitops.operator.crd import all_crds, crds_yaml
from gitops.operator.webhooks import PushEvent

SECRET = "hunter2-Secret-77"
REPO = f"git+https://bot:{SECRET}@git.example.com/team/config.git"


def policy(name: str, image: str = "registry.example.com/team/app", *,
           namespace: str = "default", interval: str = "1s") -> ImagePolicy:
    return ImagePolicy.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": image, "policy": {"semver": {"range": "^1"}}, "interval": interval}})


def automation(name: str = "auto", *, namespace: str = "default", interval: str = "1s",
               url: str = REPO) -> ImageUpdateAutomation:
    return ImageUpdateAutomation.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImageUpdateAutomation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"interval": interval, "git": {
            "url": url, "checkout": {"ref": {"branch": "main"}},
            "commit": {"author": {"name": "bot", "email": "bot@example.com"}}}}})


class Registry:
    """Stands in for latest_image: a tag per image, or an error to raise."""

    def __init__(self) -> None:
        self.tags: dict[str, str | Exception] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, policy: ImagePolicy, *, with_digest: bool = False) -> LatestImage:
        with self.lock:
            self.calls.append(policy.key)
            found = self.tags[policy.spec.image]
        if isinstance(found, Exception):
            raise found
        return LatestImage(policy.ref, policy.spec.image, found,
                           "sha256:" + "ab" * 32 if with_digest else None)


class Git:
    """Stands in for update_repository: records choices; a new choice makes a commit."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.applied: dict[str, str] = {}
        self.error: Exception | None = None
        self.commits = 0
        self.credentials: Mapping[str, Any] | None = None
        self.on_commit: Callable[[], None] | None = None

    def __call__(self, automation: ImageUpdateAutomation, choices: Mapping[str, LatestImage],
                 *, credentials: Mapping[str, Any] | None = None) -> UpdateResult:
        self.credentials = credentials
        wanted = {ref: c.reference for ref, c in choices.items()}
        self.calls.append(wanted)
        if self.error is not None:
            raise self.error
        changes = tuple(
            FileUpdate(f"{ref.replace(':', '-')}.yaml",
                       (SetterChange(1, ref, self.applied.get(ref, "none"), new),))
            for ref, new in sorted(wanted.items()) if self.applied.get(ref) != new)
        if not changes:
            return UpdateResult(None, "main", (), False)
        self.applied.update(wanted)
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit()
        return UpdateResult(f"{self.commits:040x}", "main", changes, True)


class Notes:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None, str]] = []

    def notify(self, app: str, reason: str, revision: str | None, message: str) -> None:
        self.sent.append((app, reason, revision, message))


class CountingStore(FileImageStatusStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes = 0

    def write(self, kind: Any, key: str, status: Any) -> None:
        self.writes += 1
        super().write(kind, key, status)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[dict[str, Any]]:
    registry, git, notes = Registry(), Git(), Notes()
    pushes: list[PushEvent] = []
    metrics = ImageMetrics(CollectorRegistry())
    store = CountingStore(tmp_path / "status")
    runner = ImageAutomation(store, metrics=metrics, notifier=notes, on_push=pushes.append,
                             latest=registry, update=git)
    yield {"registry": registry, "git": git, "notes": notes, "pushes": pushes,
           "metrics": metrics, "store": store, "runner": runner}
    runner.stop()


def exposition(metrics: ImageMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_a_new_tag_is_chosen_applied_pushed_and_the_applications_triggered(
        parts: dict[str, Any]) -> None:
    registry, git, runner, store = parts["registry"], parts["git"], parts["runner"], parts["store"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    runner.set_objects([policy("app")], [automation()])
    runner.start()
    wait_for(lambda: git.commits == 1, 5, "the first commit")
    assert git.calls[0] == {"default:app": "registry.example.com/team/app:1.0.0"}
    status = store.read(POLICY_KIND, "default/app")
    assert isinstance(status, ImagePolicyStatus) and status.ready
    assert status.latest_image == "registry.example.com/team/app:1.0.0"
    assert status.latest_tag == "1.0.0" and status.digest is None

    scans_at_commit: list[int] = []
    git.on_commit = lambda: scans_at_commit.append(len(registry.calls))
    with registry.lock:
        registry.tags["registry.example.com/team/app"] = "1.1.0"
        scans_before = len(registry.calls)
    wait_for(lambda: git.commits == 2, 5, "the commit of 1.1.0")
    # the next scan pushes at once: at most one scan (in flight when the tag moved) before
    # it; counted, not timed, so a loaded machine cannot fail it
    assert scans_at_commit[0] - scans_before <= 2, registry.calls[scans_before:]
    assert git.calls[-1] == {"default:app": "registry.example.com/team/app:1.1.0"}
    done = wait_for(lambda: (s := store.read(AUTOMATION_KIND, "default/auto")) and
                    s.last_push_commit == f"{2:040x}" and s, 5, "the push recorded")
    assert isinstance(done, AutomationStatus) and done.ready
    assert done.last_push_time is not None and done.last_automation_run_time is not None
    assert "1.0.0 -> registry.example.com/team/app:1.1.0" in done.message
    assert SECRET not in done.message and "git.example.com/team/config.git" in done.message

    pushes = parts["pushes"]
    assert [p.revision for p in pushes] == [f"{1:040x}", f"{2:040x}"]
    assert pushes[-1].matches("git+https://git.example.com/team/config.git@main")
    assert not pushes[-1].matches("git+https://git.example.com/team/config.git@other")
    notes = parts["notes"].sent
    assert [(n[0], n[1], n[2]) for n in notes] == [
        ("default/auto", "ImageUpdated", f"main@sha1:{1:040x}"),
        ("default/auto", "ImageUpdated", f"main@sha1:{2:040x}")]
    text = exposition(parts["metrics"])
    assert ('gitops_image_policy_latest_info{image="registry.example.com/team/app",'
            'policy="default/app",tag="1.1.0"} 1.0') in text
    assert 'tag="1.0.0"' not in text  # the old choice's series is gone
    assert 'gitops_image_update_total{automation="default/auto",result="pushed"} 2.0' in text
    assert 'gitops_image_scan_total{policy="default/app",result="success"}' in text
    assert 'gitops_image_update_duration_seconds_count{automation="default/auto"}' in text


def test_a_steady_state_writes_no_policy_status(parts: dict[str, Any]) -> None:
    registry, runner, store = parts["registry"], parts["runner"], parts["store"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    runner.set_objects([policy("app", interval="0.05s")], [])
    runner.start()
    wait_for(lambda: registry.calls.count("default/app") >= 6, 5, "several scans")
    assert store.writes == 1


def test_a_failing_policy_is_not_ready_naming_its_image_and_stops_nothing_else(
        parts: dict[str, Any]) -> None:
    registry, git, runner, store = parts["registry"], parts["git"], parts["runner"], parts["store"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    registry.tags["registry.example.com/team/down"] = SourceError(
        f"oci://bot:{SECRET}@registry.example.com/team/down", "connection refused")
    runner.set_objects([policy("app"), policy("down", "registry.example.com/team/down")],
                       [automation()])
    runner.start()
    wait_for(lambda: git.commits == 1, 5, "the good policy applied")
    assert git.calls[0] == {"default:app": "registry.example.com/team/app:1.0.0"}
    bad = store.read(POLICY_KIND, "default/down")
    assert isinstance(bad, ImagePolicyStatus) and not bad.ready
    assert bad.reason == "ScanFailed"
    assert "registry.example.com/team/down" in bad.message and "connection refused" in bad.message
    assert SECRET not in bad.message
    assert SECRET not in (store.path(POLICY_KIND, "default/down")).read_text()
    good = store.read(POLICY_KIND, "default/app")
    assert isinstance(good, ImagePolicyStatus) and good.ready
    assert 'gitops_image_scan_total{policy="default/down",result="error"}' in exposition(
        parts["metrics"])


def test_a_failing_push_is_not_ready_and_notified_once(parts: dict[str, Any]) -> None:
    registry, git, runner, store = parts["registry"], parts["git"], parts["runner"], parts["store"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    git.error = SourceError("git+https://git.example.com/team/config.git", "push refused")
    runner.set_objects([policy("app")], [automation(interval="0.05s")])
    runner.start()
    wait_for(lambda: len(git.calls) >= 4, 5, "several failed runs")
    status = store.read(AUTOMATION_KIND, "default/auto")
    assert isinstance(status, AutomationStatus) and not status.ready
    assert status.reason == "UpdateFailed" and "push refused" in status.message
    assert status.last_push_commit is None
    failed = [n for n in parts["notes"].sent if n[1] == "ImageUpdateFailed"]
    assert len(failed) == 1 and "push refused" in failed[0][3]
    assert parts["pushes"] == []
    git.error = None
    wait_for(lambda: git.commits == 1, 5, "the push once it works")
    wait_for(lambda: (s := store.read(AUTOMATION_KIND, "default/auto")) and s.ready, 5, "Ready")


def test_changed_and_removed_objects(parts: dict[str, Any]) -> None:
    registry, git, runner = parts["registry"], parts["git"], parts["runner"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    registry.tags["registry.example.com/team/other"] = "1.2.0"
    runner.set_objects([policy("app", interval="1h")], [automation(interval="1h")])
    runner.start()
    wait_for(lambda: git.commits == 1, 5, "the first commit")
    # a changed policy (another image) runs at once, and the automation after it
    runner.set_objects([policy("app", "registry.example.com/team/other", interval="1h")],
                       [automation(interval="1h")])
    wait_for(lambda: git.commits == 2, 5, "the changed policy applied")
    assert git.calls[-1] == {"default:app": "registry.example.com/team/other:1.2.0"}
    runner.set_objects([], [])
    assert runner.keys(POLICY_KIND) == [] and runner.keys(AUTOMATION_KIND) == []
    assert "default/app" not in exposition(parts["metrics"])


def test_stop_lets_the_run_in_flight_finish(tmp_path: Path) -> None:
    release, entered, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(policy: ImagePolicy, *, with_digest: bool = False) -> LatestImage:
        entered.set()
        release.wait(5)
        finished.set()
        return LatestImage(policy.ref, policy.spec.image, "1.0.0")

    runner = ImageAutomation(FileImageStatusStore(tmp_path), latest=slow)
    runner.set_objects([policy("app")], [])
    runner.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    time.sleep(0.05)
    assert stopper.is_alive()  # waiting for the scan in flight
    release.set()
    stopper.join(5)
    assert not stopper.is_alive() and finished.is_set()


def test_pushed_event_matches_only_that_repository_and_branch() -> None:
    event = pushed_event(REPO, "main", "a" * 40)
    assert event.matches("git+https://git.example.com/team/config.git@main#path=deploy")
    assert event.matches("git+https://git.example.com/team/config@main")
    assert not event.matches("git+https://git.example.com/team/other.git@main")
    assert not event.matches("git+https://git.example.com/team/config.git@v1.0.0")
    assert SECRET not in repr(event)


# -- gitops status -f ---------------------------------------------------------------------------


def test_status_shows_image_objects_from_their_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    files = tmp_path / "images.yaml"
    files.write_text(yaml.safe_dump_all([
        policy("app").to_dict(), policy("down", "registry.example.com/team/down").to_dict(),
        automation().to_dict()]))
    store = FileImageStatusStore()
    store.write(POLICY_KIND, "default/app", ImagePolicyStatus(
        latest_image="registry.example.com/team/app:1.1.0", latest_tag="1.1.0"
    ).with_ready(True, "Succeeded", "latest image registry.example.com/team/app:1.1.0"))
    store.write(AUTOMATION_KIND, "default/auto", AutomationStatus(
        last_push_commit="c" * 40).with_ready(True, "Succeeded", "pushed"))
    assert main(["status", "-f", str(files), "-o", "json"]) == 1  # "down": no status yet
    output = capsys.readouterr().out
    data = json.loads(output)
    assert data["applications"] == []
    [app, down] = data["imagePolicies"]
    assert app["latestImage"] == "registry.example.com/team/app:1.1.0" and app["ready"]
    assert not down["ready"] and down["reason"] == "NotRunYet"
    [auto] = data["imageUpdateAutomations"]
    assert auto["lastPushCommit"] == "c" * 40 and auto["branch"] == "main"
    assert SECRET not in output
    main(["status", "-f", str(files)])
    text = capsys.readouterr().out
    assert "IMAGE POLICY" in text and "IMAGE UPDATE AUTOMATION" in text
    assert "registry.example.com/team/app:1.1.0" in text and "cccccccccccc" in text
    assert SECRET not in text
    store.write(POLICY_KIND, "default/down", ImagePolicyStatus().with_ready(True, "Succeeded", ""))
    assert main(["status", "-f", str(files)]) == 0


def test_an_unreadable_record_is_a_row_saying_why(tmp_path: Path) -> None:
    store = FileImageStatusStore(tmp_path)
    path = store.path(POLICY_KIND, "default/app")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    [status] = store.read_all(POLICY_KIND, ["default/app"]).values()
    assert status is not None and not status.ready and str(path) in status.message
    with pytest.raises(InputError, match="not a namespace/name"):
        store.path(POLICY_KIND, "../x")


# -- cluster mode: CRDs and objects ---------------------------------------------------------------


def test_crds_are_structural_and_printed_by_gitops_crds() -> None:
    for crd in image_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert structural_problems(schema) == [], crd["metadata"]["name"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(crds_yaml())]
    assert names == ["applications.gitops.dev", "imagepolicies.gitops.dev",
                     "imageupdateautomations.gitops.dev", "applicationsets.gitops.dev"]
    assert [d["metadata"]["name"] for d in all_crds()] == names


def test_an_object_from_the_api_server_is_read_without_server_fields() -> None:
    obj = {"apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
           "metadata": {"name": "app", "namespace": "team", "uid": "x", "generation": 3,
                        "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": policy("app").to_dict()["spec"], "status": {"latestImage": "x"}}
    assert image_object(POLICY_KIND, obj).key == "team/app"
    obj["spec"] = {"image": "registry.example.com/x"}
    with pytest.raises(InputError, match=r"ImagePolicy team/app: .*policy"):
        image_object(POLICY_KIND, obj)


def test_declarations_files_feed_the_runner(tmp_path: Path, parts: dict[str, Any]) -> None:
    files = tmp_path / "f.yaml"
    files.write_text(yaml.safe_dump_all([policy("app").to_dict(), automation().to_dict()]))
    runner = parts["runner"]
    runner.apply(load_declarations(files))
    assert runner.keys(POLICY_KIND) == ["default/app"]
    assert runner.keys(AUTOMATION_KIND) == ["default/auto"]


def application(name: str, url: str, namespace: str = "default", **options: Any) -> Application:
    return Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"url": url, "options": options}, "target": {"url": "mock:"}}})


def test_an_automation_pushes_with_the_credentials_of_an_application_of_its_namespace(
        parts: dict[str, Any]) -> None:
    other = application("other", "git+https://git.example.com/team/other.git@main",
                        username="nobody")
    foreign = application("a-foreign", "git+https://git.example.com/team/config.git@main",
                          namespace="elsewhere", username="stranger")
    mine = application("shop", "git+https://git.example.com/team/config@main#path=deploy",
                       username="bot", password=SECRET, ssh_key="/keys/id", depth=1,
                       timeout=5)
    auto = automation()
    assert git_credentials(auto, [other, foreign]) == {}
    assert git_credentials(auto, [foreign, other, mine]) == {
        "username": "bot", "password": SECRET, "ssh_key": "/keys/id"}

    registry, git = parts["registry"], parts["git"]
    registry.tags["registry.example.com/team/app"] = "1.0.0"
    runner = ImageAutomation(parts["store"], latest=registry, update=git,
                             credentials=lambda a: git_credentials(a, [mine]))
    runner.set_objects([policy("app")], [auto])
    runner.start()
    try:
        wait_for(lambda: git.commits == 1, 5, "the push")
    finally:
        runner.stop()
    assert git.credentials == {"username": "bot", "password": SECRET, "ssh_key": "/keys/id"}
