"""Soak: the operator (``gitops run``'s scheduler, ApplicationSets) under churn returns to
its baseline: applications renamed, generated and deleted again and again leave no target
handle, root state, metric series, scheduler entry, thread or file descriptor behind.

Real sources and targets (``dir:``, ``mock:``); counts, never RSS. ``GITOPS_SOAK=1`` runs
many more cycles (``soak_support.cycles``).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import yaml
from operator_support import MemoryStatusStore, wait_for
from soak_support import Held, cycles, live, series

from gitops.apps import Application
from gitops.appsets.cluster import ClusterSink
from gitops.appsets.controller import RolloutFiles, SetController
from gitops.appsets.generate import run_generator
from gitops.appsets.generators.base import Generator, GeneratorContext
from gitops.appsets.generators.clusters import KUBECONFIG_RETENTION, SECRET_TYPE_LABEL
from gitops.appsets.rollout import RolloutState
from gitops.appsets.spec import ApplicationSet
from gitops.operator import Operator, TargetStatusStore
from gitops.operator.cluster import ClusterStatusStore
from gitops.operator.kubeapi import OperatorAPI
from gitops.operator.metrics import OperatorMetrics
from gitops.plugins import open_target, register, unregister
from gitops.targets.filetree.target import FileTreeTarget, _RootState
from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.options import parse_url
from gitops.targets.memory import MemoryTarget

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: default}\ndata: {a: b}\n"


def app_of(name: str, source: Path | str, target: str, interval: str = "1h") -> Application:
    return Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": f"dir:{source}"}, "target": {"url": target},
                 "interval": interval},
    })


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cm.yaml").write_text(CM)
    return folder


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Operator, TargetStatusStore, OperatorMetrics]]:
    store, metrics = TargetStatusStore(), OperatorMetrics()
    operator = Operator(store, workers=2, metrics=metrics)
    operator.start()
    try:
        yield operator, store, metrics
    finally:
        operator.stop()
        store.close()


def under(folder: Path) -> Callable[[Any], bool]:
    """Whether a file tree target writes under ``folder`` (this test's own)."""
    return lambda target: target.root.is_relative_to(folder)


def settled(operator: Operator) -> bool:
    return operator.idle and not operator._draining


def test_renamed_applications_leave_no_target_handle_or_series(
        running: tuple[Operator, TargetStatusStore, OperatorMetrics], source: Path,
        tmp_path: Path) -> None:
    """Every cycle replaces three applications by three of new names (a rename), each
    into a folder of its own: the handles the scheduler and the status store keep, the
    per-root states and the series are those of the three current ones, whatever the
    number of cycles."""
    operator, _store, metrics = running
    out = tmp_path / "out"

    def cycle(number: int) -> list[Application]:
        apps = [app_of(f"a{number}-{i}", source, f"dir:{out}/{number}-{i}") for i in range(3)]
        operator.set_applications(apps)
        wait_for(lambda: all((out / f"{number}-{i}/.gitops/status").is_dir() for i in range(3))
                 and settled(operator), 20, f"cycle {number} synced")
        return apps

    cycle(0)
    held, targets, roots = Held.now(), live(FileTreeTarget, under(tmp_path)), live(_RootState)
    assert targets == 6  # three apps: one handle each in its reconciler and in the store
    count = cycles(8, 200)
    for number in range(1, count + 1):
        apps = cycle(number)
    assert live(FileTreeTarget, under(tmp_path)) == targets
    assert live(_RootState) <= roots  # (other tests' may be collected meanwhile)
    assert series(metrics.registry, "app") == {a.key for a in apps}
    assert Held.now().at_most(held)
    operator.set_applications([])
    wait_for(lambda: settled(operator), 10, "all removed")
    assert live(FileTreeTarget, under(tmp_path)) == 0
    assert series(metrics.registry, "app") == set()


def test_an_application_removed_during_its_reconcile_leaves_no_series(
        running: tuple[Operator, TargetStatusStore, OperatorMetrics], source: Path) -> None:
    """The reconcile in flight ends after the removal: its result is not recorded as the
    series of an application that is gone (a ghost Prometheus would keep)."""
    operator, _store, metrics = running
    app = app_of("slow", source, "mock:soak-slow?latency=0.2")
    shared = open_target("mock:soak-slow")
    assert isinstance(shared, MemoryTarget)
    operator.set_applications([app])
    wait_for(lambda: shared.calls, 10, "the reconcile under way")
    operator.set_applications([])
    wait_for(lambda: settled(operator), 20, "the reconcile in flight done")
    assert metrics.apps() == frozenset()
    assert series(metrics.registry, "app") == set()


def test_triggers_do_not_pile_up_in_the_scheduler(
        running: tuple[Operator, TargetStatusStore, OperatorMetrics], source: Path,
        tmp_path: Path) -> None:
    """A webhook or watch event reschedules an application before its interval came: the
    superseded time must not stay queued for the rest of the interval (an hour here),
    or a target that reports drift every second grows the queue all day."""
    operator, _store, _metrics = running
    done: list[str] = []
    operator.on_status(lambda app, status, reason: done.append(reason))
    app = app_of("busy", source, f"dir:{tmp_path}/busy")
    # due before the superseded times: they are not at the head of the queue
    steady = app_of("steady", source, f"dir:{tmp_path}/steady", interval="30m")
    operator.set_applications([app, steady])
    wait_for(lambda: settled(operator) and operator.status(app.key)
             and operator.status(steady.key), 10, "first reconciles")
    for number in range(cycles(100, 5000)):
        operator.trigger(app.key, "webhook")
        wait_for(lambda: settled(operator), 10, f"reconcile {number}")
    # two applications: their scheduled times, plus what waits for the next compaction
    assert len(operator._heap) <= 2 * 2 + 64 + 1


def test_dependency_waits_of_removed_applications_are_forgotten(
        running: tuple[Operator, TargetStatusStore, OperatorMetrics], source: Path,
        tmp_path: Path) -> None:
    """The scheduler says once per (application, dependency) that it waits; renamed
    applications waiting for ones that never come must not leave those pairs behind."""
    operator, _store, _metrics = running
    for number in range(cycles(30, 1000)):
        app = Application.model_validate({
            "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": f"waits-{number}", "namespace": "team"},
            "spec": {"source": {"url": f"dir:{source}"}, "target": {"url": f"dir:{tmp_path}/w"},
                     "interval": "1h", "dependsOn": [f"never-{number}"]}})
        operator.set_applications([app])
        waiting = (app.key, f"team/never-{number}")
        wait_for(_logged(operator, waiting), 5, f"waits-{number} waiting")
    assert len(operator._waiting_logged) == 1


def _logged(operator: Operator, waiting: tuple[str, str]) -> Callable[[], bool]:
    return lambda: waiting in operator._waiting_logged


# -- ApplicationSets -----------------------------------------------------------------------


def appset_of(names: list[str], source: Path, out: Path, name: str = "churn"
              ) -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"generators": [{"list": {"elements": [{"n": n} for n in names]}}],
                 "template": {"metadata": {"name": "gen-{{n}}"},
                              "spec": {"source": {"url": f"dir:{source}"},
                                       "target": {"url": f"dir:{out}/{{{{n}}}}"},
                                       "interval": "1h", "prune": True}},
                 "interval": "1h"},
    })


def records(out: Path) -> list[str]:
    """The object, inventory and status files under ``out`` (not the folder ledgers)."""
    return sorted((Path(top) / name).relative_to(out).as_posix()
                  for top, _dirs, files in os.walk(out) for name in files
                  if name not in ("dirs.json", "lock"))


def test_generated_applications_churned_by_a_list_generator_return_to_baseline(
        running: tuple[Operator, TargetStatusStore, OperatorMetrics], source: Path,
        tmp_path: Path) -> None:
    """A list generator whose elements are replaced every cycle: each Application that
    leaves is deleted with its objects, inventory and status record; handles, series,
    scheduler entries, threads and descriptors stay those of the current three."""
    operator, _store, metrics = running
    out = tmp_path / "out"
    sets = SetController(operator, RolloutFiles(tmp_path / "state"), tick=0.05)

    def cycle(number: int) -> list[str]:
        names = [f"{number}-{i}" for i in range(3)]
        sets.apply([], [appset_of(names, source, out)])
        wait_for(lambda: _only(out, names), 20, f"cycle {number} converged")
        wait_for(lambda: settled(operator), 20, f"cycle {number} settled")
        return names

    try:
        cycle(0)
        held, targets = Held.now(), live(FileTreeTarget, under(tmp_path))
        for number in range(1, cycles(6, 150) + 1):
            names = cycle(number)
        assert _only(out, names)
        assert live(FileTreeTarget, under(tmp_path)) == targets
        assert sorted(operator.applications()) == sorted(f"team/gen-{n}" for n in names)
        assert series(metrics.registry, "app") == set(operator.applications())
        assert Held.now().at_most(held)
        sets.apply([], [])  # the set removed: its Applications go, with their objects
        wait_for(lambda: not records(out) and settled(operator), 20, "all pruned")
        assert live(FileTreeTarget, under(tmp_path)) == 0
        assert series(metrics.registry, "app") == set()
    finally:
        sets.close()


def _only(out: Path, names: list[str]) -> bool:
    """Only the current Applications' folders hold objects and records."""
    found = {path.split("/", 1)[0] for path in records(out)}
    return found == set(names) and all(
        any(p.startswith(f"{n}/.gitops/status/") for p in records(out)) for n in names)


def cluster_secret(token: str) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "cluster-eu", "namespace": "gitops-system",
                         "labels": {SECRET_TYPE_LABEL: "cluster"}},
            "data": {"name": b64("eu"), "server": b64("https://eu.example.com:6443"),
                     "config": b64(json.dumps({"bearerToken": token}))}}


def test_kubeconfigs_of_rotated_cluster_credentials_do_not_pile_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster Secret whose token rotates gets a new kubeconfig file each time (named
    by its content): those no evaluation used for a week go, the one in use stays."""
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    secrets = tmp_path / "clusters.yaml"
    context = GeneratorContext().for_set("team/fleet")

    def generate(token: str) -> Path:
        secrets.write_text(yaml.safe_dump(cluster_secret(token)))
        [params] = run_generator({"clusters": {"files": [os.fspath(secrets)]}},
                                 context.at("spec.generators[0]"))
        return Path(parse_url(params["target"])[1]["kubeconfig"])

    count = cycles(30, 1000)
    written = {generate(f"token-{number}") for number in range(count)}
    folder = next(iter(written)).parent
    assert len(written) == count == len(list(folder.glob("*.kubeconfig")))
    week_ago = time.time() - KUBECONFIG_RETENTION - 60
    for path in [*folder.glob("*.kubeconfig"), folder / ".swept"]:
        os.utime(path, (week_ago, week_ago))
    current = generate(f"token-{count - 1}")  # still in use: kept, and the old ones go
    assert current in written
    assert list(folder.glob("*.kubeconfig")) == [current]
    assert (folder / ".key").exists()  # the naming key stays: the names stay stable


class _Connection:
    """What a generator keeps open in its context's cache (a client, a source)."""

    opened: ClassVar[list[_Connection]] = []

    def __init__(self) -> None:
        self.closed = False
        _Connection.opened.append(self)

    def close(self) -> None:
        self.closed = True


class KeepsConnections(Generator):
    """One element; keeps a connection per ``token`` (say, credentials) in the cache."""

    name = "soak-keeps"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext
                 ) -> list[dict[str, Any]]:
        context.cache.get(("soak", config["token"]), _Connection)
        return [{"n": "one"}]


def test_an_edited_sets_generators_do_not_keep_what_the_old_spec_opened(
        source: Path, tmp_path: Path) -> None:
    """A set edited again and again (its git generator's credentials rotated, its URL
    moved): what its generators kept open for the old spec is closed."""
    register("generator", KeepsConnections.name, KeepsConnections)
    sets = SetController(Operator(MemoryStatusStore()), RolloutFiles(tmp_path / "state"))
    _Connection.opened.clear()
    try:
        for number in range(cycles(20, 1000)):
            appset = ApplicationSet.model_validate({
                "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
                "metadata": {"name": "edited", "namespace": "team"},
                "spec": {"generators": [{KeepsConnections.name: {"token": f"t{number}"}}],
                         "template": {"metadata": {"name": "gen-{{n}}"},
                                      "spec": {"source": {"url": f"dir:{source}"},
                                               "target": {"url": f"dir:{tmp_path}/out"}}}}})
            sets.apply([], [appset])
        assert len(_Connection.opened) == cycles(20, 1000)
        assert sum(not c.closed for c in _Connection.opened) == 1
    finally:
        sets.close()
        unregister("generator", KeepsConnections.name)
    assert all(c.closed for c in _Connection.opened)


class _RefusingClient:
    """An API server that refuses every write (a webhook denying, RBAC missing)."""

    def request(self, method: str, path: str, **_: Any) -> Any:
        raise StatusError(f"{method} {path}", 403, "Forbidden", "denied by policy")


class _RefusingAPI:
    client = _RefusingClient()


def test_generated_applications_a_cluster_refused_are_forgotten_once_given_up(
        source: Path) -> None:
    """In a cluster, a generated Application the API server refuses is reported once per
    message; one its set no longer generates must not stay in that bookkeeping."""
    api = cast(OperatorAPI, _RefusingAPI())
    owner = {"metadata": {"name": "fleet", "namespace": "team", "uid": "u-1"}}
    sink = ClusterSink(api, ClusterStatusStore(api), Operator(MemoryStatusStore()),
                       lambda _key: owner)
    for number in range(cycles(30, 1000)):
        app = app_of(f"refused-{number}", source, "k8s:")
        sink.publish([], {"team/fleet": {app.key: app}})
        sink.give_up(app, prune=False)
    assert sink._refused == {}


def test_sets_renamed_again_and_again_leave_no_rollout_state(
        source: Path, tmp_path: Path) -> None:
    """A rolling set's state file (``.gitops/appsets/NS_NAME.json``) goes with the set:
    sets renamed again and again leave only the current one's."""
    folder = tmp_path / "state"
    store = RolloutFiles(folder)
    sets = SetController(Operator(MemoryStatusStore()), store)
    try:
        for number in range(cycles(20, 500)):
            appset = appset_of([], source, tmp_path / "out", name=f"renamed-{number}")
            # as a rollout of it would have written
            store.update(appset, _written(RolloutState(revision=f"main@sha1:{number}")))
            sets.apply([], [appset])
        assert sorted(p.name for p in folder.glob("*.json")) == [f"team_renamed-{number}.json"]
    finally:
        sets.close()


def _written(state: RolloutState) -> Callable[[RolloutState | None], RolloutState]:
    return lambda _before: state
