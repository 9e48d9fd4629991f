"""What a set owned, remembered across restarts of ``gitops run``: a folder removed while
it was stopped is deleted (and pruned) at the next start, as if removed while running.

Real git daemon, real ``dir:`` targets, the real operator; a restart is a new operator and
a new SetController on the same state folder.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from appsets_support import served
from operator_support import MemoryStatusStore, wait_for
from test_appsets_lifecycle import Fleet, RecordingSink, app_of, running
from test_appsets_rollout import Rollout, image_of

from gitops.appsets.controller import RolloutFiles, SetController
from gitops.appsets.memory import OwnedFiles
from gitops.appsets.rollout import RolloutState
from gitops.appsets.spec import ApplicationSet
from gitops.operator import Operator, TargetStatusStore
from gitops.targets.memory import MemoryTarget

TOKEN = "tok-3f9a1c77e2"
PASSWORD = "pw-81be44d0"


@pytest.fixture(name="fleet")
def fleet_repository(tmp_path: Path) -> Iterator[Fleet]:
    with served(tmp_path) as daemon:
        yield Fleet(tmp_path, daemon)


def memory_of(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "team_fleet.owned.json").read_text())
    return data


def test_a_folder_removed_while_stopped_is_pruned_at_the_next_start(fleet: Fleet,
                                                                    tmp_path: Path) -> None:
    state = tmp_path / "state"
    fleet.publish("web", "api", "db")
    with running(tmp_path, memory=True) as (operator, sets):
        sets.apply([], [fleet.appset()])
        wait_for(lambda: fleet.value("web") and fleet.value("api") and fleet.value("db"), 10,
                 "all applied")
    remembered = memory_of(state)
    assert remembered["applications"] == {f"team/{n}": {"path": f"apps/{n}", "path.basename": n}
                                          for n in ("web", "api", "db")}
    assert (state / "team_fleet.owned.json").stat().st_mode & 0o777 == 0o600
    fleet.publish("web", "db")  # while stopped
    with running(tmp_path, memory=True) as (operator, sets):
        sets.apply([], [fleet.appset()])
        assert set(operator.applications()) == {"team/web", "team/db"}
        wait_for(lambda: fleet.value("api") is None, 10, "api pruned at the start")
        records = fleet.out / "api" / ".gitops"
        wait_for(lambda: not any(records.glob("inventory/*.json")), 5, "api's inventory deleted")
        assert set(memory_of(state)["applications"]) == {"team/web", "team/db"}
    assert fleet.value("web") and fleet.value("db"), "the other folders are untouched"


def test_create_only_keeps_what_it_owned_across_a_restart(fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fleet.publish("web", "api")
    policy = {"applicationsSync": "create-only"}
    with running(tmp_path, memory=True) as (_operator, sets):
        sets.apply([], [fleet.appset(policy)])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
    fleet.publish("web")
    with running(tmp_path, memory=True) as (operator, sets):
        sets.apply([], [fleet.appset(policy)])
        assert set(operator.applications()) == {"team/web", "team/api"}, \
            "kept by the policy, as while running"
        wait_for(lambda: operator.status("team/api") is not None, 10, "api reconciled again")
        assert fleet.value("api"), "its objects stay"
    assert set(memory_of(state)["applications"]) == {"team/web", "team/api"}


def test_a_generator_failing_at_the_start_deletes_nothing(fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fleet.publish("web", "api")
    with running(tmp_path, memory=True) as (_operator, sets):
        sets.apply([], [fleet.appset()])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
    before = (state / "team_fleet.owned.json").read_text()
    shutil.rmtree(fleet.bare)  # the repository cannot be read at the next start
    with running(tmp_path, memory=True) as (operator, sets):
        sets.apply([], [fleet.appset(interval="100ms")])
        time.sleep(0.4)  # a few evaluations, all failing
        assert operator.applications() == {}
    assert fleet.value("web") and fleet.value("api")
    assert (state / "team_fleet.owned.json").read_text() == before
    fleet.work.replace({"README.md": "moved\n"})  # back, but without the folders: empty
    fleet.work.commit("the folders went elsewhere")
    fleet.work.push(fleet.bare)
    with running(tmp_path, memory=True) as (operator, sets):
        sets.apply([], [fleet.appset()])
        assert set(operator.applications()) == {"team/web", "team/api"}, \
            "an empty listing keeps what the set owned"
    assert fleet.value("web") and fleet.value("api")
    assert (state / "team_fleet.owned.json").read_text() == before


def test_a_restart_with_nothing_changed_writes_and_deletes_nothing(fleet: Fleet,
                                                                   tmp_path: Path) -> None:
    state = tmp_path / "state"
    fleet.publish("web", "api")
    with running(tmp_path, memory=True) as (_operator, sets):
        sets.apply([], [fleet.appset(interval="100ms")])
        wait_for(lambda: fleet.value("web") and fleet.value("api"), 10, "both applied")
    path = state / "team_fleet.owned.json"
    written = path.stat()
    calls: list[str] = []
    with running(tmp_path, memory=True) as (operator, sets):
        sets._sink.give_up = lambda app, *, prune: calls.append(app.key)  # type: ignore[method-assign]
        sets.apply([], [fleet.appset(interval="100ms")])
        wait_for(lambda: operator.status("team/web") is not None
                 and operator.status("team/api") is not None, 10, "both reconciled")
        time.sleep(0.4)  # a few more evaluations of the set
        assert set(operator.applications()) == {"team/web", "team/api"}
    now = path.stat()
    assert (now.st_ino, now.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), \
        "a steady state does not write (an atomic rename would change the inode)"
    assert calls == []
    assert fleet.value("web") and fleet.value("api")


def listed(*names: str, target: str = "mock:", extra: dict[str, str] | None = None
           ) -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "team"},
        "spec": {"generators": [{"list": {"elements": [{"n": n, **(extra or {})}
                                                       for n in names]}}],
                 "template": {"metadata": {"name": "{{n}}"},
                              "spec": {"source": {"url": "dir:/nowhere"},
                                       "target": {"url": target}}}}})


def test_what_cannot_be_rendered_again_or_is_declared_elsewhere_is_not_deleted(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    sink = RecordingSink()
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([], [listed("a", "b", "c", "d")])
    # restarted: the template now needs a parameter the records lack; c is declared
    # statically; d is gone and renderable with the current template
    sink = RecordingSink()
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([app_of("c", "dir:/static", "mock:")],
                   [listed("a", target="mock:{{zone}}", extra={"zone": "z"})])
        assert sink.given_up == [], "b cannot be rendered again, c is not the set's: kept"
        assert set(memory_of(state)["applications"]) == {"team/a"}
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([], [listed("a", "d")])
        sets.apply([], [listed("d")])
        assert sink.given_up == [("team/a", True)]
        sets.apply([], [])  # the set removed while running: given up, its memory forgotten
        assert sink.given_up[-1] == ("team/d", True)
        assert not (state / "team_fleet.owned.json").exists()


def _cluster_secret(name: str) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    applied = json.dumps({"kind": "Secret", "stringData": {"config": json.dumps(
        {"bearerToken": TOKEN})}})
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"cluster-{name}", "namespace": "gitops-system",
                         "labels": {"gitops.dev/secret-type": "cluster", "env": name},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         applied}},
            "data": {"name": b64(name), "server": b64(f"https://{name}:6443"),
                     "config": b64(json.dumps({"bearerToken": TOKEN,
                                               "tlsClientConfig": {"insecure": True}}))}}


def test_the_memory_holds_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(yaml.safe_dump_all([_cluster_secret("eu"), _cluster_secret("us")]))
    appset = ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "team"},
        "spec": {"generators": [{"clusters": {"files": [os.fspath(clusters)]}}],
                 "template": {"metadata": {"name": "web-{{name}}",
                                           "labels": {"env": "{{metadata.labels.env}}"}},
                              "spec": {"source": {"url": f"git+https://bot:{PASSWORD}@git.example"
                                                         "/fleet.git@main#path=apps/web",
                                                  "options": {"password": PASSWORD}},
                                       "target": {"url": "{{target}}"}}}}})
    state = tmp_path / "state"
    sink = RecordingSink()
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([], [appset])
        assert set(sink.published["team/fleet"]) == {"team/web-eu", "team/web-us"}
    text = (state / "team_fleet.owned.json").read_text()
    assert TOKEN not in text and PASSWORD not in text
    assert "last-applied" not in text, "only the parameters the template uses are kept"
    assert set(json.loads(text)["applications"]["team/web-us"]) == {
        "name", "metadata.labels.env", "target"}
    clusters.write_text(yaml.safe_dump_all([_cluster_secret("eu")]))  # us gone while stopped
    sink = RecordingSink()
    given: list[Any] = []
    sink.give_up = lambda app, *, prune: given.append(app)  # type: ignore[method-assign]
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([], [appset])
    assert [app.key for app in given] == ["team/web-us"]
    assert PASSWORD in given[0].spec.source.url, "credentials come from the template again"
    assert TOKEN not in (state / "team_fleet.owned.json").read_text()


def test_gitops_run_keeps_the_memory_beside_its_first_file(tmp_path: Path) -> None:
    operator = Operator(TargetStatusStore(), workers=1)
    runtime = SimpleNamespace(operator=operator)
    args = SimpleNamespace(file=[os.fspath(tmp_path / "fleet.yaml")])
    with contextlib.closing(SetController.for_runtime(runtime, args, None)) as sets:
        sets.apply([], [listed("a")])
        assert set(operator.applications()) == {"team/a"}
    path = tmp_path / ".gitops" / "appsets" / "team_fleet.owned.json"
    assert json.loads(path.read_text()) == {"applicationSet": "team/fleet",
                                            "applications": {"team/a": {"n": "a"}}}


@pytest.fixture(name="rollout")
def rollout_fleet(tmp_path: Path) -> Iterator[Rollout]:
    with served(tmp_path) as daemon:
        yield Rollout(tmp_path, daemon)
    MemoryTarget.clear_shared()


def test_a_rolling_sets_application_removed_while_stopped_goes_through_the_gate(
        rollout: Rollout, tmp_path: Path) -> None:
    """Removed while stopped, prod's Application leaves as a rolling set's leave: at its
    pin until the rollout of the revision is complete (here it is), then pruned."""
    staging, prod = rollout.targets["staging"], rollout.targets["prod"]
    rollout.commit("1")
    state = tmp_path / "state"
    store = RolloutFiles(state)
    statuses = MemoryStatusStore()
    appset = rollout.appset()
    only_staging = rollout.appset(generators=[{"list": {"elements": [
        {"env": "staging", "target": staging.url}]}}])
    for declared in (appset, only_staging):
        operator = Operator(statuses, workers=2)
        sets = SetController(operator, store, memory=OwnedFiles(state), tick=0.05)
        operator.start()
        try:
            sets.apply([], [declared])
            if declared is appset:
                wait_for(lambda: (store.read(appset) or RolloutState()).complete, 15,
                         "v1 everywhere")
                assert image_of(prod) == "web:1"
            else:
                wait_for(lambda: image_of(prod) is None, 15, "prod pruned at the start")
                assert image_of(staging) == "web:1"
                assert set(sets.applications("team/web")) == {"team/web-staging"}
        finally:
            sets.close()
            operator.stop()


def test_a_corrupt_memory_is_reported_not_acted_on_and_replaced(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "team_fleet.owned.json"
    path.write_text('{"applicationSet": "team/fleet", "applications": [')
    sink = RecordingSink()
    with contextlib.closing(SetController(sink, RolloutFiles(state),
                                          memory=OwnedFiles(state))) as sets:
        sets.apply([], [listed("a")])
    assert sink.given_up == []
    assert f"{path}: corrupt record of what the ApplicationSet owned" in caplog.text
    assert memory_of(state)["applications"] == {"team/a": {"n": "a"}}
