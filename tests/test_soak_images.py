"""Soak: image automation under churn (policies and automations added, renamed and removed
again and again) returns to its baseline: no metric series, remembered choice or failure
of an object that is gone, not even one removed while its run was in flight.

The registry scan and the Git update are stand-ins passed through the runner's
``latest``/``update`` seams; the tag cache and the working trees are real.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from filelock import FileLock
from operator_support import wait_for
from prometheus_client import CollectorRegistry
from soak_support import Held, cycles, series

from gitops.cache import cache_root
from gitops.errors import SourceError
from gitops.images.automation import ImageAutomation, discard_worktree, worktree_path
from gitops.images.controller import ClusterImageStatusStore, ImageController
from gitops.images.gitpush import UpdateResult
from gitops.images.latest import LatestImage
from gitops.images.metrics import ImageMetrics
from gitops.images.scan import TAG_LIST_RETENTION, TagCache, parse_image
from gitops.images.spec import ImagePolicy, ImageUpdateAutomation
from gitops.images.status import (
    AUTOMATION_KIND,
    POLICY_KIND,
    AutomationStatus,
    FileImageStatusStore,
    ImageKind,
    ImagePolicyStatus,
)
from gitops.operator.kubeapi import OperatorAPI

IMAGE = "registry.example.com/team/app"


def policy(name: str) -> ImagePolicy:
    return ImagePolicy.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"image": IMAGE, "policy": {"semver": {"range": "^1"}}, "interval": "1h"}})


def automation(name: str) -> ImageUpdateAutomation:
    return ImageUpdateAutomation.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImageUpdateAutomation",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"interval": "1h", "git": {
            "url": "git+https://git.example.com/team/config.git",
            "checkout": {"ref": {"branch": "main"}},
            "commit": {"author": {"name": "bot", "email": "bot@example.com"}}}}})


class Gate:
    """A stand-in that holds each call until released; then answers or raises ``error``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.error: Exception | None = None

    def wait(self) -> None:
        self.entered.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error


class Runner:
    """An ImageAutomation with metrics, a scan and an update that may be gated."""

    def __init__(self, tmp: Path) -> None:
        self.metrics = ImageMetrics(CollectorRegistry())
        self.gate: Gate | None = None  # holds the scans
        self.update_gate: Gate | None = None  # holds the updates
        self.scans: list[str] = []
        self.updates: list[str] = []
        self.runner = ImageAutomation(FileImageStatusStore(tmp / "status"), metrics=self.metrics,
                                      latest=self.latest, update=self.update)

    def latest(self, policy: ImagePolicy, *, with_digest: bool = False) -> LatestImage:
        if self.gate is not None:
            self.gate.wait()
        self.scans.append(policy.key)
        return LatestImage(policy.ref, IMAGE, "1.0.0", None)

    def update(self, automation: ImageUpdateAutomation, choices: Mapping[str, LatestImage],
               *, credentials: Mapping[str, Any] | None = None) -> UpdateResult:
        if self.update_gate is not None:
            self.update_gate.wait()
        self.updates.append(automation.key)
        tree = worktree_path(automation)  # what update_repository keeps between runs
        with FileLock(os.fspath(tree.with_name(tree.name + ".lock"))):
            (tree / ".git").mkdir(parents=True, exist_ok=True)
            (tree / "deploy.yaml").write_text("image: app:1.0.0\n")
        return UpdateResult(None, "main", (), False)

    def remembered(self) -> int:
        """Choices, evaluations, failures and written statuses the runner keeps."""
        seen = self.runner._seen
        return len(seen.latest) + len(seen.evaluated) + len(seen.failures) + len(seen.written)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    made = Runner(tmp_path)
    yield made
    made.runner.stop()


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_a_policy_removed_during_its_scan_leaves_nothing(runner: Runner, fails: bool) -> None:
    gate = runner.gate = Gate()
    if fails:
        gate.error = SourceError(f"oci://{IMAGE}", "connection refused")
    runner.runner.set_objects([policy("p")], [])
    runner.runner.start()
    assert gate.entered.wait(5)
    runner.runner.set_objects([], [])
    gate.release.set()
    runner.runner.stop()  # the run in flight finishes
    assert series(runner.metrics.registry, "policy") == set()
    assert runner.runner.latest("team/p") is None
    assert runner.remembered() == 0


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_an_automation_removed_during_its_run_leaves_nothing(runner: Runner, fails: bool) -> None:
    runner.runner.set_objects([policy("p")], [automation("a")])
    runner.runner.start()
    wait_for(lambda: runner.updates, 5, "a first update")
    gate = runner.update_gate = Gate()
    if fails:
        gate.error = SourceError("git+https://git.example.com/team/config.git", "refused")
    runner.runner.set_objects([policy("p2")], [automation("a")])  # a's run again, at once
    assert gate.entered.wait(5)
    runner.runner.set_objects([], [])
    gate.release.set()
    runner.runner.stop()
    assert series(runner.metrics.registry, "automation") == set()
    assert series(runner.metrics.registry, "policy") == set()
    assert runner.remembered() == 0


class GatedStore(FileImageStatusStore):
    """Status files, an automation's write held until released."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = Gate()

    def write(self, kind: ImageKind, key: str,
              status: ImagePolicyStatus | AutomationStatus) -> None:
        if kind == AUTOMATION_KIND:
            self.gate.wait()
        super().write(kind, key, status)


def test_an_automation_removed_while_its_status_is_written_leaves_nothing(
        runner: Runner, tmp_path: Path) -> None:
    """Seen at the 240th of 500 soak cycles: the status written was remembered after the
    automation had been removed, for ever."""
    store = GatedStore(tmp_path / "gated")
    runner.runner = ImageAutomation(store, metrics=runner.metrics, latest=runner.latest,
                                    update=runner.update)
    runner.runner.set_objects([policy("p")], [automation("a")])
    runner.runner.start()
    assert store.gate.entered.wait(5)
    runner.runner.set_objects([], [])
    store.gate.release.set()
    runner.runner.stop()
    assert runner.remembered() == 0


def test_churned_policies_and_automations_return_to_baseline(runner: Runner) -> None:
    """Every cycle replaces three policies and an automation by ones of new names."""

    def cycle(number: int) -> list[str]:
        policies = [policy(f"p{number}-{i}") for i in range(3)]
        runner.runner.set_objects(policies, [automation(f"a{number}")])
        wait_for(lambda: f"team/a{number}" in runner.updates, 5, f"cycle {number} ran")
        return [p.key for p in policies]

    # three policies: a choice, an evaluation and a status each; the automation's status
    kept = 3 * 3 + 1
    runner.runner.start()
    cycle(0)
    wait_for(lambda: runner.remembered() == kept, 5, "what the first cycle keeps")
    held = Held.now()
    for number in range(1, cycles(20, 500) + 1):
        keys = cycle(number)
    wait_for(lambda: runner.remembered() == kept, 5, "what the last cycle keeps")
    assert series(runner.metrics.registry, "policy") == set(keys)
    assert series(runner.metrics.registry, "automation") == {f"team/a{number}"}
    assert Held.now().at_most(held)
    # the working trees (a clone each) of the automations renamed away are gone
    kept_tree = worktree_path(automation(f"a{number}")).name
    assert worktrees() == [kept_tree, kept_tree + ".lock"]


def worktrees() -> list[str]:
    """The working trees and lock files kept under the cache."""
    folder = cache_root() / "image-worktrees"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_working_tree_is_discarded_after_the_run_in_flight(runner: Runner) -> None:
    gate = runner.update_gate = Gate()
    gone = automation("a")
    runner.runner.set_objects([policy("p")], [gone])
    runner.runner.start()
    assert gate.entered.wait(5)
    runner.runner.set_objects([policy("p")], [automation("b")])  # a removed while it runs
    gate.release.set()
    wait_for(lambda: "team/b" in runner.updates, 5, "b ran")
    runner.runner.stop()
    assert worktrees() == sorted([worktree_path(automation("b")).name,
                                  worktree_path(automation("b")).name + ".lock"])


def test_a_working_tree_in_use_by_another_process_is_kept(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / ".git").mkdir(parents=True)
    with FileLock(os.fspath(tmp_path / "tree.lock")):
        assert not discard_worktree(tree)
        assert (tree / ".git").is_dir()
    assert discard_worktree(tree)
    assert not tree.exists() and not (tmp_path / "tree.lock").exists()


def test_the_tag_cache_keeps_only_what_was_written_lately(tmp_path: Path) -> None:
    """One file per repository and credentials: with passwords rotated every day (a new
    scope each time) and repositories no policy scans any more, the folder would grow
    for ever; a write deletes what nobody wrote for a day (checked once an hour)."""
    folder = tmp_path / "tags"
    cache = TagCache(folder, max_age=30)
    old = time.time() - TAG_LIST_RETENTION - 60
    count = cycles(50, 2000)
    for number in range(count):  # yesterday's scopes and repositories
        cache.put(parse_image(f"registry.example.com/team/app{number % 7}"), ["1.0.0"],
                  scope=f"password-{number}")
    assert len(list(folder.glob("*.json"))) == count  # one per repository and scope
    for path in folder.glob("*.json"):
        os.utime(path, (old, old))
    cache.put(parse_image("registry.example.com/team/fresh"), ["1.0.0"])  # swept last hour
    assert len(list(folder.glob("*.json"))) == count + 1
    os.utime(tmp_path / "tags.swept", (old, old))
    cache.put(parse_image("registry.example.com/team/app0"), ["1.0.1"], scope="password-new")
    assert sorted(p.name.split("-")[0] for p in folder.glob("*.json")) == [
        "registry.example.com_team_app0", "registry.example.com_team_fresh"]
    assert cache.get(parse_image("registry.example.com/team/app0"), scope="password-new") == (
        "1.0.1",)


class RecordingStore(ClusterImageStatusStore):
    """The controller's store, its status writes recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__(cast(OperatorAPI, None))
        self.written: list[tuple[str, str]] = []

    def write(self, kind: ImageKind, key: str,
              status: ImagePolicyStatus | AutomationStatus) -> None:
        self.written.append((key, status.reason))


def test_invalid_image_objects_created_and_deleted_leave_nothing(runner: Runner) -> None:
    """Hostile churn in a cluster: invalid ImagePolicies under ever new names, each deleted
    again. The controller reports each (InvalidSpec) and forgets it once deleted, so one
    made again under a used name is reported again and nothing grows."""
    store = RecordingStore()
    controller = ImageController(cast(OperatorAPI, None), store, runner.runner)
    count = cycles(50, 5000)
    for number in range(count):
        obj = {"metadata": {"name": f"bad{number % 10}", "namespace": "team"},
               "spec": {"image": "not an image"}}
        store.seen(POLICY_KIND, obj)
        controller.refilter()
        store.forget(POLICY_KIND, f"team/bad{number % 10}")
        controller.refilter()
    assert [reason for _, reason in store.written] == ["InvalidSpec"] * count
    assert controller._invalid == {}
