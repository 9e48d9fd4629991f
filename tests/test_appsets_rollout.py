"""Progressive rollout: the revision gate (:func:`gitops.appsets.rollout.advance`) on its own,
then the set controller driving real applications on ``mock:`` targets from a git repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from appsets_support import deployment, served
from operator_support import MemoryStatusStore, wait_for

from gitops.apps import Application
from gitops.appsets.controller import RolloutFiles, SetController, state_dir
from gitops.appsets.rollout import (
    RolloutState,
    advance,
    commit_of,
    pin_source,
    same_revision,
    step_members,
)
from gitops.appsets.spec import ApplicationSet, RollingSyncStep
from gitops.cli import main
from gitops.errors import InputError
from gitops.model import ResourceKey
from gitops.operator import Operator
from gitops.operator.status import AppStatus, Condition, now
from gitops.targets.kubernetes.errors import TransportError
from gitops.targets.memory import MemoryTarget
from gitops.testing.gitserver import GitDaemon, WorkRepo

OLD = "main@sha1:" + "a" * 40
NEW = "main@sha1:" + "b" * 40
NEWER = "main@sha1:" + "c" * 40


def step(env: str, max_update: int | str | None = None) -> RollingSyncStep:
    data: dict[str, Any] = {"matchExpressions": [{"key": "env", "operator": "In",
                                                  "values": [env]}]}
    if max_update is not None:
        data["maxUpdate"] = max_update
    return RollingSyncStep.model_validate(data)


STEPS = [step("staging"), step("prod")]
LABELS = {"s/a": {"env": "staging"}, "s/b": {"env": "staging"},
          "p/a": {"env": "prod"}, "p/b": {"env": "prod"}}


def status(revision: str, *, sync: str = "Synced", health: str = "Healthy",
           attempted: str | None = None, failed: bool = False) -> AppStatus:
    ready = Condition(type="Ready", status="False" if failed or health != "Healthy" else "True",
                      reason="ReconciliationFailed" if failed else "x", last_transition_time=now())
    return AppStatus.model_validate({
        "sync": sync, "health": health, "lastAppliedRevision": revision,
        "lastAttemptedRevision": attempted or revision, "conditions": [ready.model_dump(
            by_alias=True)], "message": "what happened"})


def settled(revision: str) -> RolloutState:
    """Everything pinned at ``revision``, complete."""
    return RolloutState(revision=revision, phase="Complete", pins=dict.fromkeys(LABELS, revision))


def test_a_new_revision_moves_step_one_only() -> None:
    statuses = {key: status(OLD) for key in LABELS}
    state, events = advance("ns/set", STEPS, LABELS, NEW, settled(OLD), statuses)
    assert state.phase == "Progressing" and state.step == 1
    assert state.pins == {"s/a": NEW, "s/b": NEW, "p/a": OLD, "p/b": OLD}
    assert state.holding == "s/a"
    assert [e.reason for e in events] == ["RolloutStarted"]


def test_prod_moves_only_once_staging_is_synced_and_healthy_at_the_revision() -> None:
    state, _ = advance("ns/set", STEPS, LABELS, NEW, settled(OLD),
                       {key: status(OLD) for key in LABELS})
    # staging reconciled at NEW, but one is still Progressing
    statuses = {"s/a": status("sha1:" + "b" * 40), "s/b": status(NEW, health="Progressing"),
                "p/a": status(OLD), "p/b": status(OLD)}
    state, _ = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    assert state.pins["p/a"] == OLD and state.holding == "s/b"
    statuses["s/b"] = status(NEW)
    state, events = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    assert state.step == 2 and state.pins["p/a"] == state.pins["p/b"] == NEW
    statuses["p/a"] = statuses["p/b"] = status(NEW)
    state, events = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    assert state.complete and [e.reason for e in events] == ["RolloutCompleted"]
    again, events = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    assert again.complete and events == [], "completed is said once"


def test_a_stale_status_at_the_old_revision_does_not_count() -> None:
    state, _ = advance("ns/set", STEPS, LABELS, NEW, settled(OLD),
                       {key: status(OLD) for key in LABELS})
    state, _ = advance("ns/set", STEPS, LABELS, NEW, state,
                       {key: status(OLD) for key in LABELS})
    assert state.step == 1 and state.pins["p/a"] == OLD


@pytest.mark.parametrize("bad", [
    {"health": "Degraded"},
    {"sync": "OutOfSync", "health": "Healthy", "failed": True},
])
def test_a_degraded_or_failed_application_halts_and_later_steps_keep_the_old_revision(
        bad: dict[str, Any]) -> None:
    state, _ = advance("ns/set", STEPS, LABELS, NEW, settled(OLD),
                       {key: status(OLD) for key in LABELS})
    revision = OLD if bad.get("failed") else NEW
    statuses = {"s/a": status(NEW), "s/b": status(revision, attempted=NEW, **bad),
                "p/a": status(OLD), "p/b": status(OLD)}
    state, events = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    assert state.phase == "Halted" and state.holding == "s/b"
    assert state.halted is not None and state.halted.revision == NEW and state.halted.step == 1
    assert "s/b" in state.message and "what happened" in state.message
    # the message says what stopped it: a failed sync is not "Healthy", whatever the
    # health recorded at the previous revision
    said = "s/b is Degraded at " if bad.get("health") == "Degraded" else "s/b failed at "
    assert said in state.message and "Healthy" not in state.message, state.message
    assert [e.reason for e in events] == ["RolloutHalted"]
    # even once s/b looks fine again, the halt holds (until resumed or a newer commit)
    statuses["s/b"] = status(NEW)
    for _ in range(3):
        state, events = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
        assert state.phase == "Halted" and events == []
        assert state.pins["p/a"] == state.pins["p/b"] == OLD


def halted_by_staging() -> tuple[RolloutState, dict[str, AppStatus | None]]:
    """NEW rolled out to staging, where s/b is Degraded: halted."""
    state, _ = advance("ns/set", STEPS, LABELS, NEW, settled(OLD),
                       {key: status(OLD) for key in LABELS})
    statuses: dict[str, AppStatus | None] = {
        "s/a": status(NEW), "s/b": status(NEW, health="Degraded"),
        "p/a": status(OLD), "p/b": status(OLD)}
    state, _ = advance("ns/set", STEPS, LABELS, NEW, state, statuses)
    return state, statuses


def test_resume_accepts_the_halting_application_and_continues() -> None:
    state, statuses = halted_by_staging()
    assert state.phase == "Halted"
    state, events = advance("ns/set", STEPS, LABELS, NEW,
                            state.model_copy(update={"resume_requested": True}), statuses)
    assert [e.reason for e in events] == ["RolloutResumed"]
    assert state.phase == "Progressing" and state.step == 2
    assert state.pins["p/a"] == NEW and not state.resume_requested


def test_a_newer_commit_after_a_halt_starts_again_from_step_one() -> None:
    state, statuses = halted_by_staging()
    state, events = advance("ns/set", STEPS, LABELS, NEWER, state, statuses)
    assert state.phase == "Progressing" and state.step == 1 and state.halted is None
    assert state.pins == {"s/a": NEWER, "s/b": NEWER, "p/a": OLD, "p/b": OLD}
    assert [e.reason for e in events] == ["RolloutStarted"]


def test_max_update_moves_that_many_at_once() -> None:
    labels = {f"s/{i}": {"env": "staging"} for i in range(4)}
    steps = [step("staging", max_update="50%")]
    state = RolloutState(revision=OLD, phase="Complete", pins=dict.fromkeys(labels, OLD))
    statuses = {key: status(OLD) for key in labels}
    state, _ = advance("ns/set", steps, labels, NEW, state, statuses)
    assert sorted(k for k, v in state.pins.items() if v == NEW) == ["s/0", "s/1"]
    statuses["s/0"] = status(NEW)  # one done: one more may move
    state, _ = advance("ns/set", steps, labels, NEW, state, statuses)
    assert sorted(k for k, v in state.pins.items() if v == NEW) == ["s/0", "s/1", "s/2"]
    zero = [step("staging", max_update=0)]
    held, _ = advance("ns/set", zero, labels, NEWER, state, statuses)
    assert held.phase == "Progressing" and NEWER not in held.pins.values()


def test_new_applications_are_held_back_until_their_step_and_unselected_ones_go_last() -> None:
    labels = {**LABELS, "x/other": {"team": "x"}}
    assert step_members(STEPS, labels) == [["s/a", "s/b"], ["p/a", "p/b"], ["x/other"]]
    state, _ = advance("ns/set", STEPS, labels, NEW, RolloutState(), {})
    assert state.pins == {"s/a": NEW, "s/b": NEW}, "a first rollout starts with step 1 only"
    statuses = {"s/a": status(NEW), "s/b": status(NEW)}
    state, _ = advance("ns/set", STEPS, labels, NEW, state, statuses)
    assert set(state.pins) == {"s/a", "s/b", "p/a", "p/b"}
    statuses |= {"p/a": status(NEW), "p/b": status(NEW)}
    state, _ = advance("ns/set", STEPS, labels, NEW, state, statuses)
    assert state.pins.get("x/other") == NEW and state.step == 3


def test_revisions_and_pins() -> None:
    commit = "b" * 40
    assert commit_of(NEW) == commit and commit_of("sha1:" + commit) == commit
    assert commit_of("v1@sha256:" + "e" * 64) is None
    assert same_revision(NEW, "sha1:" + commit) and not same_revision(NEW, OLD)
    app = Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "web"},
        "spec": {"source": {"url": "git+http://u:secret@h:9/r.git@main#path=apps/web"},
                 "target": {"url": "mock:x"}}})
    pinned = pin_source(app, NEW, where="ns/set")
    assert pinned.spec.source.url == f"git+http://u:secret@h:9/r.git@{commit}#path=apps/web"
    bare = app.model_copy(update={"spec": app.spec.model_copy(update={
        "source": app.spec.source.model_copy(update={"url": "git+http://h/r.git"})})})
    assert pin_source(bare, NEW, where="ns/set").spec.source.url == f"git+http://h/r.git@{commit}"
    local = app.model_copy(update={"spec": app.spec.model_copy(update={
        "source": app.spec.source.model_copy(update={"url": "dir:/tmp/x"})})})
    with pytest.raises(InputError, match=r"ns/set.*not a git repository"):
        pin_source(local, NEW, where="ns/set")


# -- the set controller on mock: targets, from a repository on git daemon ------------------



def image_of(target: MemoryTarget) -> str | None:
    obj = target.objects().get(WEB)
    if obj is None:
        return None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


WEB = ResourceKey("apps", "Deployment", "default", "web")


class Rollout:
    """A repository served by git daemon, two mock targets (staging, prod) whose Deployments
    turn Healthy, Progressing (image ``*-slow``) or Degraded (``*-broken``), and a set."""

    def __init__(self, root: Path, daemon: GitDaemon) -> None:
        self.work = WorkRepo(root / "work", home=root)
        self.bare = root / "served" / "fleet.git"
        self.daemon = daemon
        self.targets: dict[str, MemoryTarget] = {}
        for env in ("staging", "prod"):
            name = f"ro-{env}-{root.name}"
            self.targets[env] = MemoryTarget.shared(name, status_factory=_deployment_status)

    def commit(self, version: str) -> str:
        self.work.write({"apps/web/deploy.yaml": deployment(version)})
        sha = self.work.commit(f"web {version}")
        self.work.push(self.bare)
        return sha

    def appset(self, **spec: Any) -> ApplicationSet:
        url = self.daemon.url("fleet.git")
        elements = [{"env": env, "target": target.url} for env, target in self.targets.items()]
        return ApplicationSet.model_validate({
            "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {
                "generators": [{"list": {"elements": elements}}],
                "template": {
                    "metadata": {"name": "web-{{env}}", "labels": {"env": "{{env}}"}},
                    "spec": {"source": {"url": f"{url}@main#path=apps/web"},
                             "target": {"url": "{{target}}"}, "interval": "1h",
                             "retry": {"limit": 1, "backoff": "100ms"}}},
                "strategy": {"type": "RollingSync", "rollingSync": {"steps": [
                    {"matchExpressions": [{"key": "env", "operator": "In",
                                           "values": ["staging"]}]},
                    {"matchExpressions": [{"key": "env", "operator": "In",
                                           "values": ["prod"]}]}]}},
                "interval": "300ms", **spec}})


def _deployment_status(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") != "Deployment":
        return None
    image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    if image.endswith("-broken"):
        return {"conditions": [{"type": "Progressing", "status": "False",
                                "reason": "ProgressDeadlineExceeded"}]}
    if image.endswith("-slow"):
        return {"replicas": 1, "updatedReplicas": 0, "availableReplicas": 0}
    return {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}


HEALTHY = {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Rollout]:
    with served(tmp_path) as daemon:
        yield Rollout(tmp_path, daemon)
    MemoryTarget.clear_shared()


def test_a_commit_reaches_prod_only_after_staging_and_a_degraded_staging_halts_it(
        fleet: Rollout, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    staging, prod = fleet.targets["staging"], fleet.targets["prod"]
    fleet.commit("1")
    appset = fleet.appset()
    declared = tmp_path / "fleet.yaml"
    declared.write_text(yaml.safe_dump(appset.to_dict()))
    store = RolloutFiles(state_dir([declared]))
    notes = Notes()
    operator = Operator(MemoryStatusStore(), workers=2)
    sets = SetController(operator, store, notifier=notes, tick=0.05)

    def rollout(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["rollout", *args, "web", "-f", str(declared)])
        return code, capsys.readouterr().out

    operator.start()
    try:
        sets.apply([], [appset])
        assert set(sets.applications("team/web")) == {"team/web-staging"}, \
            "a first rollout deploys step 1 first"
        wait_for(lambda: image_of(prod) == "web:1", 15, "v1 in prod")
        wait_for(lambda: (store.read(appset) or RolloutState()).complete, 5, "complete")
        assert image_of(staging) == "web:1"

        second = fleet.commit("2-slow")  # staging will stay Progressing
        wait_for(lambda: image_of(staging) == "web:2-slow", 10, "v2 in staging")
        state = wait_for(lambda: _state(store, appset, "Progressing", second), 5, "in progress")
        assert state.holding == "team/web-staging" and state.step == 1
        code, text = rollout("status")
        assert code == 1 and "Progressing" in text and "waiting for: team/web-staging" in text
        assert sets.applications("team/web")["team/web-prod"].spec.source.url.endswith(
            f"@{fleet.work.head('HEAD~1')}#path=apps/web")
        time.sleep(0.7)  # two intervals of the set: prod must not move meanwhile
        assert image_of(prod) == "web:1"
        staging.set_status(WEB, HEALTHY)  # staging's rollout settles
        wait_for(lambda: image_of(prod) == "web:2-slow", 10, "v2 in prod after staging")
        assert not _state(store, appset, "Complete", second), "prod is still Progressing"
        prod.set_status(WEB, HEALTHY)
        wait_for(lambda: _state(store, appset, "Complete", second), 10, "complete at v2")

        bad = fleet.commit("3-broken")
        wait_for(lambda: image_of(staging) == "web:3-broken", 10, "v3 in staging")
        state = wait_for(lambda: _state(store, appset, "Halted", bad), 10, "halted")
        assert state.halted is not None and state.halted.application == "team/web-staging"
        assert "Degraded" in state.message and bad[:7] in state.message
        time.sleep(1.0)  # several intervals: the halt holds, prod keeps v2
        assert image_of(prod) == "web:2-slow"
        assert _state(store, appset, "Halted", bad)
        assert ("team/web", "RolloutHalted") in notes.seen
        assert ("team/web", "RolloutCompleted") in notes.seen
        code, text = rollout("status", "-o", "json")
        shown = json.loads(text)
        assert code == 1 and shown["phase"] == "Halted" and shown["complete"] is False
        assert shown["holding"] == "team/web-staging"
        assert shown["halted"]["revision"].endswith(bad)

        code, text = rollout("resume")  # accept staging at v3: prod gets it, and halts there
        assert code == 0 and "resume requested" in text
        wait_for(lambda: image_of(prod) == "web:3-broken", 10, "v3 in prod once resumed")
        state = wait_for(lambda: _state(store, appset, "Halted", bad) if (
            store.read(appset) or RolloutState()).step == 2 else None, 10, "halted by prod")
        assert state.holding == "team/web-prod"
        assert ("team/web", "RolloutResumed") in notes.seen

        fixed = fleet.commit("4")  # a newer commit: a new rollout from step 1
        wait_for(lambda: image_of(prod) == "web:4", 15, "v4 everywhere")
        wait_for(lambda: _state(store, appset, "Complete", fixed), 10, "complete at v4")
        assert image_of(staging) == "web:4"
        assert rollout("status")[0] == 0
    finally:
        sets.close()
        operator.stop()


def _state(store: RolloutFiles, appset: ApplicationSet, phase: str,
           commit: str) -> RolloutState | None:
    state = store.read(appset)
    if state is None or state.phase != phase or commit_of(state.revision) != commit:
        return None
    return state


class Notes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def notify(self, app: str, reason: str, revision: str, message: str) -> None:
        self.seen.append((app, reason))


def test_a_rolling_set_whose_sources_cannot_be_pinned_is_refused_once(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    appset = ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "local", "namespace": "team"},
        "spec": {"generators": [{"list": {"elements": [{"env": "staging"}]}}],
                 "template": {"metadata": {"name": "web-{{env}}", "labels": {"env": "{{env}}"}},
                              "spec": {"source": {"url": f"dir:{tmp_path / 'src'}"},
                                       "target": {"url": "mock:"}}},
                 "strategy": {"rollingSync": {"steps": [{"matchExpressions": [
                     {"key": "env", "operator": "Exists"}]}]}}}})
    notes = Notes()
    operator = Operator(MemoryStatusStore(), workers=1)
    sets = SetController(operator, RolloutFiles(tmp_path / "state"), notifier=notes, tick=0.05)
    try:
        sets.apply([], [appset])
        sets.apply([], [appset])
        assert operator.applications() == {}
        assert notes.seen == [("team/local", "GenerateFailed")]
    finally:
        sets.close()


def test_one_shot_commands_never_let_an_application_skip_its_step(
        fleet: Rollout, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gitops run --once``, ``sync`` and ``status`` see a rolling set as its rollout lets it
    run: nothing before ``gitops run`` starts the rollout, then only the steps it reached,
    pinned to the revision it gave them."""
    staging, prod = fleet.targets["staging"], fleet.targets["prod"]
    sha = fleet.commit("1")
    appset = fleet.appset()
    declared = tmp_path / "fleet.yaml"
    declared.write_text(yaml.safe_dump(appset.to_dict()))

    def cli(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([*args, "-f", str(declared)])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, text = cli("run", "--once")
    assert code == 1 and image_of(staging) is None and image_of(prod) is None
    assert text.count("held by the rollout of ApplicationSet team/web") == 2

    RolloutFiles(state_dir([declared])).update(appset, lambda _old: RolloutState(
        revision=f"main@sha1:{sha}", phase="Progressing", step=1, steps=2,
        holding="team/web-staging", pins={"team/web-staging": f"main@sha1:{sha}"}))
    fleet.commit("2")  # newer than the rollout's revision: a one-shot run must not take it
    code, text = cli("run", "--once")
    assert image_of(staging) == "web:1" and image_of(prod) is None
    assert "held by the rollout" in text and "web-prod" in text
    code, text = cli("sync", "web-prod")
    assert code != 0 and image_of(prod) is None
    assert "team/web-prod: held by the rollout of ApplicationSet team/web" in text
    code, text = cli("status", "-o", "json")
    rows = {row["name"]: row for row in json.loads(text)["applications"]}
    assert sha[:7] in rows["web-staging"]["revision"]
    assert "held by the rollout" in rows["web-prod"]["message"]


class FlakyStatusSink:
    """A sink whose status reads fail until ``failing`` is cleared (a store that is down)."""

    always = False

    def __init__(self) -> None:
        self.failing = True
        self.statuses: dict[str, AppStatus] = {}
        self.published: dict[str, dict[str, Application]] = {}
        self.asked: set[str] = set()

    def publish(self, static: Any, generated: Any) -> None:
        self.published = {k: dict(v) for k, v in generated.items()}

    def give_up(self, app: Application, *, prune: bool) -> None:
        raise AssertionError("nothing is given up here")

    def status(self, app: Application) -> AppStatus | None:
        self.asked.add(app.key)
        if self.failing:
            raise TransportError("the status store is unreachable")
        return self.statuses.get(app.key)

    def owned(self, appset: ApplicationSet) -> dict[str, Application]:
        return {}


def test_a_status_that_cannot_be_read_holds_the_rollout_and_never_stops_it(
        fleet: Rollout, tmp_path: Path) -> None:
    sha = fleet.commit("1")
    sink = FlakyStatusSink()
    sets = SetController(sink, RolloutFiles(tmp_path / "state"), tick=0.05)
    try:
        sets.apply([], [fleet.appset()])  # the first evaluation must not raise
        assert set(sink.published["team/web"]) == {"team/web-staging"}
        time.sleep(0.3)
        assert set(sink.published["team/web"]) == {"team/web-staging"}, \
            "an unknown status lets nothing through"
        assert sink.asked == {"team/web-staging"}, "a held-back one's status is not read"
        sink.statuses["team/web-staging"] = status(f"main@sha1:{sha}")
        sink.failing = False  # the evaluation loop is still alive: prod comes
        wait_for(lambda: "team/web-prod" in sink.published["team/web"], 5, "prod's turn")
    finally:
        sets.close()


def test_a_commit_that_cannot_be_rendered_halts_the_rollout(fleet: Rollout, tmp_path: Path) -> None:
    """The commonest bad commit fails before any sync (a manifest that does not parse): it
    halts the rollout, naming the Application, like a Degraded one."""
    staging, prod = fleet.targets["staging"], fleet.targets["prod"]
    fleet.commit("1")
    appset = fleet.appset()
    store = RolloutFiles(tmp_path / "state")
    notes = Notes()
    operator = Operator(MemoryStatusStore(), workers=2)
    sets = SetController(operator, store, notifier=notes, tick=0.05)
    operator.start()
    try:
        sets.apply([], [appset])
        wait_for(lambda: (store.read(appset) or RolloutState()).complete, 15, "v1 everywhere")
        fleet.work.write({"apps/web/deploy.yaml": "kind: [unclosed\n"})
        bad = fleet.work.commit("a manifest that does not parse")
        fleet.work.push(fleet.bare)
        state = wait_for(lambda: _state(store, appset, "Halted", bad), 10, "halted")
        assert state.holding == "team/web-staging" and state.step == 1
        # the state is written first, then the notification goes out
        wait_for(lambda: ("team/web", "RolloutHalted") in notes.seen, 5, "RolloutHalted sent")
        assert image_of(prod) == "web:1" and image_of(staging) == "web:1"
        assert sets.applications("team/web")["team/web-prod"].spec.source.url.endswith(
            f"@{fleet.work.head('HEAD~1')}#path=apps/web")
    finally:
        sets.close()
        operator.stop()


def test_a_restart_keeps_a_complete_rollout_complete(fleet: Rollout, tmp_path: Path) -> None:
    """gitops run started again: its first look at the set comes before the scheduler has
    the Applications, and must read their stored statuses, not take them for unknown (the
    rollout falling back to Progressing, RolloutCompleted sent again)."""
    fleet.commit("1")
    appset = fleet.appset()
    store = RolloutFiles(tmp_path / "state")
    statuses = MemoryStatusStore()
    for run in range(2):
        notes = Notes()
        operator = Operator(statuses, workers=2)
        sets = SetController(operator, store, notifier=notes, tick=0.05)
        operator.start()
        try:
            sets.apply([], [appset])
            if run == 0:
                wait_for(lambda: (store.read(appset) or RolloutState()).complete, 15, "complete")
                assert ("team/web", "RolloutCompleted") in notes.seen
            else:
                assert (store.read(appset) or RolloutState()).complete, "still complete"
                time.sleep(0.3)
                assert notes.seen == [], "nothing happened to notify"
        finally:
            sets.close()
            operator.stop()


def test_an_application_a_halted_commit_drops_is_deleted_only_once_the_rollout_completes(
        fleet: Rollout, tmp_path: Path) -> None:
    """Dropping an Application (its folder gone, its element removed) is part of what the
    new revision changes: while the rollout is halted, prod keeps running as it was; its
    Application goes (objects pruned) once a rollout completes."""
    staging, prod = fleet.targets["staging"], fleet.targets["prod"]
    fleet.commit("1")
    store = RolloutFiles(tmp_path / "state")
    operator = Operator(MemoryStatusStore(), workers=2)
    sets = SetController(operator, store, tick=0.05)
    operator.start()
    try:
        appset = fleet.appset()
        sets.apply([], [appset])
        wait_for(lambda: (store.read(appset) or RolloutState()).complete, 15, "v1 everywhere")
        good = fleet.work.head()
        bad = fleet.commit("2-broken")
        wait_for(lambda: _state(store, appset, "Halted", bad), 15, "halted at staging")
        only_staging = [{"list": {"elements": [{"env": "staging", "target": staging.url}]}}]
        appset = fleet.appset(generators=only_staging)
        sets.apply([], [appset])
        time.sleep(0.5)
        assert image_of(prod) == "web:1", "prod is not touched while the rollout is halted"
        assert sets.applications("team/web")["team/web-prod"].spec.source.url.endswith(
            f"@{good}#path=apps/web")
        fleet.commit("3")  # a good commit: the rollout completes, and prod's Application goes
        wait_for(lambda: image_of(prod) is None, 15, "prod pruned once the rollout completed")
        assert image_of(staging) == "web:3"
        assert "team/web-prod" not in sets.applications("team/web")
    finally:
        sets.close()
        operator.stop()
