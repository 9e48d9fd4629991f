"""Lifecycle of generated applications: deleting an application prunes what its inventory
owns (through the engine) and drops its records; a set's applications are created,
updated and deleted as its generators say, under ``applicationsSync``.

Real sources (``dir:``) and targets (``dir:``, ``mock:``); nothing about the engine is faked.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appsets_support import served
from operator_support import MemoryStatusStore, wait_for

from gitops.apps import Application
from gitops.appsets.controller import RolloutFiles, SetController
from gitops.appsets.memory import OwnedFiles
from gitops.appsets.spec import ApplicationSet
from gitops.engine import Reconciler
from gitops.model import ResourceKey
from gitops.operator import Operator, TargetStatusStore
from gitops.operator.deletion import delete_application
from gitops.operator.webhooks import PushEvent, normalize_repository
from gitops.targets.faults import FailWhen
from gitops.targets.memory import MemoryTarget
from gitops.testing.gitserver import GitDaemon, WorkRepo

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{value: "{value}"}}
"""


def app_of(name: str, source: str, target: str, **spec: Any) -> Application:
    return Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": source}, "target": {"url": target}, "interval": "1h",
                 **spec},
    })


def folder(path: Path, **values: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (path / f"{name}.yaml").write_text(CM.format(name=name, value=value))
    return path


def object_file(out: Path, name: str) -> Path:
    return out / "default" / "ConfigMap" / f"{name}.yaml"


# -- deleting one application --------------------------------------------------------------


def test_delete_application_prunes_its_objects_and_forgets_its_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    src_a = folder(tmp_path / "a", one="1", two="2")
    src_b = folder(tmp_path / "b", three="3")
    store = TargetStatusStore()
    a = app_of("a", f"dir:{src_a}", f"dir:{out}")
    b = app_of("b", f"dir:{src_b}", f"dir:{out}")
    operator = Operator(store, workers=2)
    operator.set_applications([a, b])
    operator.start()
    try:
        wait_for(lambda: object_file(out, "one").exists() and object_file(out, "three").exists(),
                 10, "both applications applied")
        wait_for(lambda: store.read(a) is not None, 5, "a's status record")
        assert operator.delete(a.key)
        wait_for(lambda: not object_file(out, "one").exists(), 10, "a's objects pruned")
        wait_for(lambda: store.read(a) is None, 5, "a's status record deleted")
    finally:
        operator.stop()
        store.close()
    assert not object_file(out, "two").exists()
    assert object_file(out, "three").exists(), "another application's object was touched"
    assert not (out / ".gitops" / "inventory" / f"{a.inventory_name}.json").exists()
    assert (out / ".gitops" / "inventory" / f"{b.inventory_name}.json").exists()
    assert a.key not in operator.applications()
    assert not operator.delete(a.key), "deleting an unknown application says so"


def test_delete_keeps_objects_marked_prune_false_and_others_inventories(tmp_path: Path) -> None:
    src = folder(tmp_path / "src", gone="1")
    (src / "kept.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: default\n"
        "  annotations: {argocd.argoproj.io/sync-options: Prune=false}\ndata: {v: '1'}\n")
    target = MemoryTarget.from_url("mock:lifecycle-keep")
    app = app_of("keep", f"dir:{src}", "mock:lifecycle-keep")
    with Reconciler(f"dir:{src}", target, name=app.inventory_name) as engine:
        assert engine.sync().succeeded
    result = delete_application(app)
    assert result.succeeded and (result.deleted, result.kept) == (1, 1), result
    keys = [ResourceKey("", "ConfigMap", "default", n) for n in ("gone", "kept")]
    assert {k.name for k in target.live(keys)} == {"kept"}
    assert target.read_inventory(app.inventory_name) is None, "the inventory is forgotten"


def test_a_failed_prune_is_retried_on_the_backoff(tmp_path: Path) -> None:
    src = folder(tmp_path / "src", x="1")
    refuse = FailWhen(lambda call: True, method="delete", times=2, transient=False)
    app = app_of("retry", f"dir:{src}", "mock:lifecycle-retry",
                 retry={"limit": 5, "backoff": "50ms", "maxBackoff": "100ms"})
    app = app.model_copy(update={"spec": app.spec.model_copy(update={
        "target": app.spec.target.model_copy(update={"options": {"faults": (refuse,)}})})})
    target = MemoryTarget.from_url("mock:lifecycle-retry")
    key = ResourceKey("", "ConfigMap", "default", "x")
    notes: list[tuple[str, str]] = []

    class Notes:
        def notify(self, app: str, reason: str, revision: str, message: str) -> None:
            notes.append((app, reason))

    operator = Operator(MemoryStatusStore(), workers=1, notifier=Notes())
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: target.live([key]), 10, "applied")
        operator.delete(app.key)
        wait_for(lambda: not target.live([key]), 10, "pruned after two refusals")
        wait_for(lambda: target.read_inventory(app.inventory_name) is None, 5, "forgotten")
    finally:
        operator.stop()
    assert refuse.fired == 2
    assert [n for n in notes if n[1] != "SyncSucceeded"] == [
        ("team/retry", "DeletionFailed"), ("team/retry", "ApplicationDeleted")], \
        "a failing deletion is notified once, not at every retry"


def test_adding_an_application_again_while_it_is_deleted_brings_it_back(
        tmp_path: Path) -> None:
    src = folder(tmp_path / "src", x="1")
    out = tmp_path / "out"
    app = app_of("back", f"dir:{src}", f"dir:{out}")
    operator = Operator(MemoryStatusStore(), workers=1)
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: object_file(out, "x").exists(), 10, "applied")
        operator.delete(app.key)
        operator.set_applications([app])  # back before (or while) it is deleted
        wait_for(lambda: operator.status(app.key) is not None
                 and object_file(out, "x").exists() and operator.idle, 10, "applied again")
        assert app.key in operator.applications()
    finally:
        operator.stop()
    assert object_file(out, "x").exists()


def test_delete_before_start_runs_at_start(tmp_path: Path) -> None:
    src = folder(tmp_path / "src", y="1")
    out = tmp_path / "out"
    app = app_of("early", f"dir:{src}", f"dir:{out}")
    with Reconciler(f"dir:{src}", f"dir:{out}", name=app.inventory_name) as engine:
        assert engine.sync().succeeded
    operator = Operator(MemoryStatusStore(), workers=1)
    assert operator.delete(app.key, app)
    assert object_file(out, "y").exists()
    operator.start()
    try:
        wait_for(lambda: not object_file(out, "y").exists(), 10, "pruned once started")
    finally:
        operator.stop()


# -- a set's Applications, as its generators change -----------------------------------------


class Fleet:
    """A repository on git daemon with ``apps/*`` folders, one ConfigMap each."""

    def __init__(self, root: Path, daemon: GitDaemon) -> None:
        self.root = root
        self.work = WorkRepo(root / "work", home=root)
        self.bare = root / "served" / "fleet.git"
        self.url = daemon.url("fleet.git")
        self.out = root / "out"

    def publish(self, *folders: str, value: str = "1") -> None:
        self.work.replace({f"apps/{name}/cm.yaml": CM.format(name=name, value=value)
                           for name in folders})
        self.work.commit("folders")
        self.work.push(self.bare)

    def appset(self, policy: dict[str, Any] | None = None, *, interval: str = "1h",
               labels: dict[str, str] | None = None) -> ApplicationSet:
        spec: dict[str, Any] = {
            "generators": [{"git": {"url": f"{self.url}@main",
                                    "directories": [{"path": "apps/*"}]}}],
            "template": {
                "metadata": {"name": "{{path.basename}}", "labels": labels or {}},
                "spec": {"source": {"url": f"{self.url}@main#path={{{{path}}}}"},
                         "target": {"url": f"dir:{self.out}/{{{{path.basename}}}}"},
                         "interval": "1h", "prune": True}},
            "interval": interval,
        }
        if policy is not None:
            spec["syncPolicy"] = policy
        return ApplicationSet.model_validate({
            "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "fleet", "namespace": "team"}, "spec": spec})

    def value(self, folder: str) -> str | None:
        try:  # read, not exists() then read: a prune may remove it in between
            return object_file(self.out / folder, folder).read_text()
        except FileNotFoundError:
            return None


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with served(tmp_path) as daemon:
        yield Fleet(tmp_path, daemon)


@contextlib.contextmanager
def running(tmp_path: Path, *, memory: bool = False
            ) -> Iterator[tuple[Operator, SetController]]:
    """One run of ``gitops run``: an operator and its set controller, state (and, with
    ``memory``, what each set owned) in ``tmp_path / "state"``."""
    state = tmp_path / "state"
    operator = Operator(TargetStatusStore(), workers=2)
    sets = SetController(operator, RolloutFiles(state), tick=0.05,
                         memory=OwnedFiles(state) if memory else None)
    operator.start()
    try:
        yield operator, sets
    finally:
        sets.close()
        operator.stop()


def test_folders_come_and_go_with_their_applications_and_objects(fleet: Fleet,
                                                                 tmp_path: Path) -> None:
    fleet.publish("web", "api")
    with running(tmp_path) as (operator, sets):
        appset = fleet.appset(interval="200ms")
        sets.apply([], [appset])
        assert set(operator.applications()) == {"team/web", "team/api"}
        app = operator.applications()["team/web"]
        assert app.metadata.annotations["gitops.dev/application-set"] == "team/fleet"
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
        fleet.publish("web", "api", "db")  # a folder added: picked up on the set's interval
        wait_for(lambda: fleet.value("db"), 10, "db applied")
        fleet.publish("web", "db")  # a folder removed: its Application and objects go
        wait_for(lambda: fleet.value("api") is None, 10, "api pruned")
        assert set(operator.applications()) == {"team/web", "team/db"}
        records = fleet.out / "api" / ".gitops"
        wait_for(lambda: not any(records.glob("inventory/*.json"))
                 and not any(records.glob("status/*.json")), 5, "api's records deleted")
        assert fleet.value("web") and fleet.value("db")


@pytest.mark.parametrize("policy", ["create-update", "create-only"])
def test_policies_that_never_delete_keep_the_application_and_its_objects(
        fleet: Fleet, tmp_path: Path, policy: str) -> None:
    fleet.publish("web", "api")
    with running(tmp_path) as (operator, sets):
        sets.apply([], [fleet.appset({"applicationsSync": policy})])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
        fleet.publish("web")
        sets.apply([], [fleet.appset({"applicationsSync": policy}, labels={"v": "2"})])
        assert set(operator.applications()) == {"team/web", "team/api"}
        web = operator.applications()["team/web"]
        assert web.metadata.labels == ({} if policy == "create-only" else {"v": "2"}), \
            "create-only never updates an existing Application; create-update does"
        assert fleet.value("api"), "its objects stay"


def test_preserve_resources_and_a_set_removed(fleet: Fleet, tmp_path: Path) -> None:
    fleet.publish("web", "api")
    with running(tmp_path) as (operator, sets):
        sets.apply([], [fleet.appset({"preserveResourcesOnDeletion": True})])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
        fleet.publish("web")
        sets.apply([], [fleet.appset({"preserveResourcesOnDeletion": True})])
        assert set(operator.applications()) == {"team/web"}
        time.sleep(0.3)
        assert fleet.value("api"), "preserveResourcesOnDeletion keeps the objects"
        static = app_of("static", f"dir:{folder(tmp_path / 'static', s='1')}",
                        f"dir:{tmp_path / 'static-out'}")
        sets.apply([static], [fleet.appset()])
        assert set(operator.applications()) == {"team/web", "team/static"}
        sets.apply([static], [])  # the set is gone: so are its Applications and objects
        wait_for(lambda: fleet.value("web") is None, 10, "web pruned with its set")
        assert set(operator.applications()) == {"team/static"}


def test_a_push_to_the_repository_evaluates_the_set_at_once(fleet: Fleet,
                                                            tmp_path: Path) -> None:
    fleet.publish("web")
    with running(tmp_path) as (_operator, sets):
        sets.apply([], [fleet.appset(interval="1h")])
        wait_for(lambda: fleet.value("web"), 10, "applied")
        fleet.publish("web", "db")
        other = PushEvent("github", frozenset({normalize_repository("git://127.0.0.1:1/x.git")}),
                          "refs/heads/main", "main", None, None)
        assert sets.pushed(other) == []
        push = PushEvent("github", frozenset({normalize_repository(fleet.url)}),
                         "refs/heads/main", "main", None, None)
        assert sets.pushed(push) == ["team/fleet"]
        wait_for(lambda: fleet.value("db"), 10, "the pushed folder applied")


def test_a_repository_that_cannot_be_read_deletes_nothing(fleet: Fleet, tmp_path: Path) -> None:
    fleet.publish("web")
    with running(tmp_path) as (operator, sets):
        sets.apply([], [fleet.appset()])
        wait_for(lambda: fleet.value("web"), 10, "applied")
        shutil.rmtree(fleet.bare)  # the repository vanishes
        sets.apply([], [fleet.appset(labels={"v": "2"})])
        assert set(operator.applications()) == {"team/web"}
        assert fleet.value("web")


class RecordingSink:
    """A sink that remembers what it was asked to do."""

    always = False

    def __init__(self) -> None:
        self.published: dict[str, dict[str, Application]] = {}
        self.given_up: list[tuple[str, bool]] = []

    def publish(self, static: Any, generated: Any) -> None:
        self.published = {k: dict(v) for k, v in generated.items()}

    def give_up(self, app: Application, *, prune: bool) -> None:
        self.given_up.append((app.key, prune))

    def status(self, app: Application) -> None:
        return None

    def owned(self, appset: ApplicationSet) -> dict[str, Application]:
        return {}


def listed(*names: str) -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "l", "namespace": "team"},
        "spec": {"generators": [{"list": {"elements": [{"n": n} for n in names]}}],
                 "template": {"metadata": {"name": "{{n}}"},
                              "spec": {"source": {"url": "dir:/nowhere"},
                                       "target": {"url": "mock:"}}}}})


def test_a_released_set_gives_nothing_up_and_a_removed_one_does(tmp_path: Path) -> None:
    sink = RecordingSink()
    sets = SetController(sink, RolloutFiles(tmp_path / "state"))
    try:
        sets.apply([], [listed("a", "b")])
        assert set(sink.published["team/l"]) == {"team/a", "team/b"}
        sets.apply([], [listed("a")])
        assert sink.given_up == [("team/b", True)]
        sets.release("team/l")  # another replica's now
        sets.apply([], [])
        assert sink.given_up == [("team/b", True)], "a released set deletes nothing"
        sets.apply([], [listed("a")])
        sets.apply([], [])  # removed: its Applications go
        assert sink.given_up[-1] == ("team/a", True)
    finally:
        sets.close()


def test_generators_giving_nothing_delete_nothing(fleet: Fleet, tmp_path: Path) -> None:
    """A branch pushed to a commit without the folders (an empty listing) is not a fleet
    meant to go: nothing is deleted until the set itself is removed."""
    fleet.publish("web", "api")
    with running(tmp_path) as (operator, sets):
        sets.apply([], [fleet.appset()])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
        fleet.work.replace({"README.md": "moved\n"})
        fleet.work.commit("the folders went elsewhere")
        fleet.work.push(fleet.bare)
        sets.apply([], [fleet.appset(labels={"v": "2"})])
        assert set(operator.applications()) == {"team/web", "team/api"}
        time.sleep(0.3)
        assert fleet.value("web") and fleet.value("api"), "objects stay"
        fleet.publish("web")  # one folder back: the other one goes, as usual
        sets.apply([], [fleet.appset(labels={"v": "3"})])
        assert set(operator.applications()) == {"team/web"}
        wait_for(lambda: fleet.value("api") is None, 10, "api pruned")


def test_a_list_giving_nothing_deletes_nothing_and_removing_the_set_does(tmp_path: Path) -> None:
    sink = RecordingSink()
    sets = SetController(sink, RolloutFiles(tmp_path / "state"))
    try:
        sets.apply([], [listed("a", "b")])
        sets.apply([], [listed()])
        assert sink.given_up == []
        assert set(sink.published["team/l"]) == {"team/a", "team/b"}
        sets.apply([], [])
        assert sorted(sink.given_up) == [("team/a", True), ("team/b", True)]
    finally:
        sets.close()


def test_a_set_never_deletes_an_application_it_does_not_own(tmp_path: Path) -> None:
    """A generated name that a declared Application (or another set's) already has is
    ignored: when the set stops generating it, the other one's objects stay."""
    sink = RecordingSink()
    sets = SetController(sink, RolloutFiles(tmp_path / "state"))
    static = app_of("a", "dir:/static", "mock:")
    try:
        sets.apply([static], [listed("a", "b")])
        assert set(sink.published["team/l"]) == {"team/b"}
        sets.apply([static], [listed("b")])
        assert sink.given_up == [], "team/a is the declared one's"
        sets.apply([], [listed("a", "b")])  # no longer declared: the set's now
        sets.apply([static], [listed("b")])  # declared again: the set lets it go, unpruned
        assert sink.given_up == []
        assert set(sink.published["team/l"]) == {"team/b"}
    finally:
        sets.close()
