"""The operator's core: one reconcile's decisions, status and history, the scheduler,
and the commands behind ``gitops status/history/sync/rollback/suspend/resume``.

Real sources (``dir:``, ``git+file://`` driven by the real git) and real targets
(``dir:``, ``mock:``); nothing about the engine is faked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import MemoryStatusStore, wait_for

from gitops.apps import Application
from gitops.errors import InputError
from gitops.operator import AppReconciler, Operator, TargetStatusStore
from gitops.operator.commands import (
    FileCatalog,
    find_application,
    resolve_revision,
    rollback,
    run_once,
    set_suspended,
    sync_now,
)
from gitops.operator.status import HISTORY_LIMIT, AppStatus, SyncRecord, merged, now
from gitops.testing.gitserver import WorkRepo

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{value: "{value}"}}
"""


def app_doc(name: str, source: str, target: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": source}, "target": {"url": target}, "interval": "1h",
                 "prune": True, **spec},
    }


def write_apps(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def object_file(out: Path, name: str) -> Path:
    return out / "default" / "ConfigMap" / f"{name}.yaml"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cm.yaml").write_text(CM.format(name="one", value="1"))
    return folder


def test_first_reconcile_applies_and_records_history(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    files = write_apps(tmp_path / "apps.yaml", app_doc("shop", f"dir:{src}", f"dir:{out}"))
    catalog = FileCatalog([files])
    [(_app, outcome)] = run_once(catalog)
    assert outcome is not None and not outcome.failed
    status = outcome.status
    assert (status.sync, status.health) == ("Synced", "Healthy")  # a file tree: in sync = Healthy
    assert status.ready and status.last_applied_revision.startswith("sha256:")
    assert status.counts["created"] == 1 and status.resources == 1
    assert [r.trigger for r in status.history] == ["start"]
    assert outcome.reasons == ("SyncSucceeded",)
    assert "value: '1'" in object_file(out, "one").read_text() or '"1"' in object_file(
        out, "one").read_text()
    # stored in the target, where another process finds it
    again = FileCatalog([files])
    stored = again.store.read(find_application(again, "shop"))
    assert stored == status
    catalog.close()
    again.close()


def test_steady_state_writes_nothing(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}"))
    store = MemoryStatusStore()
    runner = AppReconciler(app, store)
    first = runner.reconcile("start")
    assert first.synced and store.writes == 1
    inventory = next((out / ".gitops" / "inventory").iterdir())
    written = inventory.stat().st_mtime_ns, object_file(out, "one").stat().st_mtime_ns
    for _ in range(3):
        outcome = runner.reconcile("interval")
        assert not outcome.synced and outcome.reasons == ()
    assert store.writes == 1
    assert (inventory.stat().st_mtime_ns, object_file(out, "one").stat().st_mtime_ns) == written
    runner.close()


def drift(out: Path) -> None:
    object_file(out, "one").write_text(CM.format(name="one", value="tampered"))


def test_self_heal_fixes_drift(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}"))
    runner = AppReconciler(app, MemoryStatusStore())
    runner.reconcile("start")
    drift(out)
    outcome = runner.reconcile("interval")
    assert outcome.synced and outcome.reasons == ("DriftDetected", "SyncSucceeded")
    assert "tampered" not in object_file(out, "one").read_text()
    assert outcome.status.sync == "Synced"
    runner.close()


def test_without_self_heal_drift_is_reported_not_fixed(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    files = write_apps(tmp_path / "apps.yaml",
                       app_doc("shop", f"dir:{src}", f"dir:{out}", selfHeal=False))
    catalog = FileCatalog([files])
    app = find_application(catalog, "team/shop")
    runner = AppReconciler(app, catalog.store)
    runner.reconcile("start")
    drift(out)
    outcome = runner.reconcile("interval")
    assert not outcome.synced and outcome.reasons == ("DriftDetected",)
    assert outcome.status.sync == "OutOfSync" and not outcome.status.ready
    assert "selfHeal is off" in outcome.status.message
    assert "tampered" in object_file(out, "one").read_text()
    # reported once per episode, not every interval
    assert runner.reconcile("interval").reasons == ()
    # a new revision is applied all the same (as Argo CD's automated sync does)
    (src / "cm.yaml").write_text(CM.format(name="one", value="2"))
    outcome = runner.reconcile("interval")
    assert outcome.synced and outcome.status.sync == "Synced"
    assert 'value: "2"' in object_file(out, "one").read_text() or "'2'" in object_file(
        out, "one").read_text()
    drift(out)
    runner.reconcile("interval")
    # a person's sync applies whatever selfHeal says
    manual = sync_now(catalog, app)
    assert manual.synced and manual.status.history[-1].trigger == "manual"
    assert "tampered" not in object_file(out, "one").read_text()
    runner.close()
    catalog.close()


def test_a_bad_manifest_fails_stalled_and_changes_nothing(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}"))
    runner = AppReconciler(app, MemoryStatusStore())
    runner.reconcile("start")
    before = object_file(out, "one").read_text()
    (src / "bad.yaml").write_text("kind: ConfigMap\nmetadata: {}\n")
    outcome = runner.reconcile("interval")
    assert outcome.failed and outcome.stalled and outcome.reasons == ("SyncFailed",)
    assert "bad.yaml" in outcome.status.message
    stalled = outcome.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert object_file(out, "one").read_text() == before
    # the same failure again is one history entry, not one per retry
    again = runner.reconcile("interval")
    assert again.reasons == () and len(again.status.history) == len(outcome.status.history)
    runner.close()


def test_history_keeps_the_last_ten(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}"))
    runner = AppReconciler(app, MemoryStatusStore())
    for i in range(HISTORY_LIMIT + 3):
        (src / "cm.yaml").write_text(CM.format(name="one", value=str(i)))
        runner.reconcile("interval")
    history = runner.stored_status().history
    assert len(history) == HISTORY_LIMIT
    assert history[-1].revision == runner.stored_status().last_applied_revision
    runner.close()


def test_conditions_keep_their_transition_time(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}"))
    runner = AppReconciler(app, MemoryStatusStore())
    first = runner.reconcile("start").status.condition("Ready")
    time.sleep(1.05)
    (src / "cm.yaml").write_text(CM.format(name="one", value="2"))
    second = runner.reconcile("interval").status.condition("Ready")
    assert first is not None and second is not None and second.status == "True"
    assert second.last_transition_time == first.last_transition_time
    runner.close()


def test_status_merge_keeps_a_concurrent_suspension_and_history() -> None:
    t = now()
    ours = AppStatus(sync="Synced", history=(
        SyncRecord(revision="a", time=t, result="Succeeded", trigger="interval"),))
    theirs = AppStatus(suspended=True, suspended_reason="by hand", history=(
        SyncRecord(revision="b", time=t, result="Succeeded", trigger="manual"),))
    both = merged(ours, theirs)
    assert both.suspended and both.suspended_reason == "by hand" and both.sync == "Synced"
    assert {r.revision for r in both.history} == {"a", "b"}


# -- rollback, suspend, resume on a git source ------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    work = WorkRepo(tmp_path / "repo", home=tmp_path / "home")
    work.write({"cm.yaml": CM.format(name="one", value="v1")})
    work.commit("v1")
    return work


def test_rollback_applies_an_earlier_revision_and_suspends(tmp_path: Path, repo: WorkRepo
                                                           ) -> None:
    out = tmp_path / "out"
    files = write_apps(tmp_path / "apps.yaml",
                       app_doc("shop", f"git+file://{repo.path}@main", f"dir:{out}"))
    catalog = FileCatalog([files])
    app = find_application(catalog, "shop")
    first = sync_now(catalog, app).status.last_applied_revision
    repo.write({"cm.yaml": CM.format(name="one", value="v2")})
    repo.commit("v2")
    second = sync_now(catalog, app).status.last_applied_revision
    assert first != second and "v2" in object_file(out, "one").read_text()

    with pytest.raises(InputError, match=r"selfHeal is on.*--force"):
        rollback(catalog, app, first)
    short = first.rpartition(":")[2][:8]
    assert resolve_revision(catalog.store.read(app), short) == first
    outcome = rollback(catalog, app, short, force=True)
    assert not outcome.failed and outcome.status.last_applied_revision == first
    assert "v1" in object_file(out, "one").read_text()
    status = catalog.store.read(app)
    assert status is not None and status.suspended and first in status.suspended_reason
    assert status.history[-1].trigger == "rollback"

    # suspended: the operator leaves it alone (the newer commit is not re-applied)
    operator = Operator(catalog.store, workers=1)
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: operator.idle, 10, "the condition")  # its start came and was skipped
        assert "v1" in object_file(out, "one").read_text()
        set_suspended(catalog, app, False)
        operator.trigger(app.key, "manual")  # as `gitops sync` would; resume takes effect
        wait_for(lambda: "v2" in object_file(out, "one").read_text(), 10, "the condition")
    finally:
        operator.stop()
    catalog.close()


def test_resume_of_an_app_suspended_in_its_file_is_refused(tmp_path: Path, src: Path) -> None:
    files = write_apps(tmp_path / "apps.yaml",
                       app_doc("shop", f"dir:{src}", f"dir:{tmp_path / 'out'}", suspend=True))
    catalog = FileCatalog([files])
    with pytest.raises(InputError, match=r"spec\.suspend is true"):
        set_suspended(catalog, find_application(catalog, "shop"), False)
    catalog.close()


def test_find_application_by_name_or_key(tmp_path: Path, src: Path) -> None:
    docs = [app_doc("shop", f"dir:{src}", f"dir:{tmp_path / 'a'}"),
            {**app_doc("shop", f"dir:{src}", f"dir:{tmp_path / 'b'}"),
             "metadata": {"name": "shop", "namespace": "other"}}]
    catalog = FileCatalog([write_apps(tmp_path / "apps.yaml", *docs)])
    with pytest.raises(InputError, match="names several applications"):
        find_application(catalog, "shop")
    assert find_application(catalog, "other/shop").namespace == "other"
    with pytest.raises(InputError, match=r"no application 'nope'.*other/shop, team/shop"):
        find_application(catalog, "nope")
    catalog.close()


# -- the scheduler ----------------------------------------------------------------------------


def test_operator_orders_dependencies_and_retries_with_backoff(tmp_path: Path, src: Path
                                                               ) -> None:
    infra_src = tmp_path / "infra"
    infra_src.mkdir()
    (infra_src / "bad.yaml").write_text("kind: ConfigMap\nmetadata: {}\n")  # fails until fixed
    infra = Application.model_validate(app_doc(
        "infra", f"dir:{infra_src}", f"dir:{tmp_path / 'infra-out'}",
        retry={"limit": 3, "backoff": "100ms", "maxBackoff": "200ms"}))
    shop = Application.model_validate(app_doc(
        "shop", f"dir:{src}", f"dir:{tmp_path / 'shop-out'}", dependsOn=["infra"]))
    store = MemoryStatusStore()
    seen: list[tuple[str, str]] = []
    operator = Operator(store, workers=2)
    operator.on_status(lambda app, _status, reason: seen.append((app.name, reason)))
    operator.set_applications([shop, infra])
    operator.start()
    try:
        wait_for(lambda: store.data.get("team/infra") is not None, 5, "the condition")
        time.sleep(0.5)  # long enough for the backoff retries (100 ms, 200 ms)
        assert "team/shop" not in store.data  # held back: infra is not Ready
        assert seen.count(("infra", "SyncFailed")) == 1  # one entry however many retries
        (infra_src / "bad.yaml").write_text(CM.format(name="infra", value="x"))
        operator.trigger("team/infra", "manual")
        wait_for(lambda: (s := store.data.get("team/shop")) is not None and s.ready, 5, "the condition")
        assert seen.index(("infra", "SyncSucceeded")) < seen.index(("shop", "SyncSucceeded"))
        assert store.data["team/shop"].history[0].trigger == "dependency"
    finally:
        operator.stop()


def test_operator_interval_and_stop_finish_in_flight(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    app = Application.model_validate({**app_doc("shop", f"dir:{src}", f"dir:{out}"),
                                      "spec": {**app_doc("shop", f"dir:{src}", f"dir:{out}")[
                                          "spec"], "interval": "200ms"}})
    store = MemoryStatusStore()
    operator = Operator(store, workers=1, jitter=0.0)
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: object_file(out, "one").exists(), 5, "the condition")
        drift(out)  # a file tree cannot watch: the next interval heals it
        wait_for(lambda: "tampered" not in object_file(out, "one").read_text(), 5, "the condition")
        # the healing sync writes the file, then its status: wait for the record, not a race
        wait_for(lambda: store.data[app.key].history[-1].trigger == "interval", 5,
                 "an interval sync recorded")
        operator.set_applications([])  # dropped: no more reconciles, objects stay
        wait_for(lambda: operator.idle, 5, "the condition")
        drift(out)
        time.sleep(0.5)
        assert "tampered" in object_file(out, "one").read_text()
    finally:
        operator.stop()


def test_status_store_in_a_mock_target(src: Path) -> None:
    app = Application.model_validate(app_doc("shop", f"dir:{src}", "mock:status-store"))
    store = TargetStatusStore()
    outcome = AppReconciler(app, store).reconcile("start")
    assert store.read(app) == outcome.status and outcome.status.health == "Healthy"
    store.close()


def test_a_real_status_fits_the_crd_status_schema(tmp_path: Path, src: Path) -> None:
    """What the controller writes (a status after syncs, drift and a failure) is what the
    CRD's status schema admits: a real API server would prune or refuse anything else."""
    from structural_schema import instance_problems

    from gitops.operator.cluster import ClusterStatusStore
    from gitops.operator.crd import status_schema

    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"dir:{src}", f"dir:{out}",
                                             selfHeal=False))
    store = MemoryStatusStore()
    runner = AppReconciler(app, store)
    runner.reconcile("start")
    drift(out)
    runner.reconcile("interval")
    (src / "bad.yaml").write_text("kind: ConfigMap\nmetadata: {}\n")
    runner.reconcile("webhook")
    written: dict[str, Any] = {}

    class Api:
        def write_status(self, namespace: str, name: str, status: dict[str, Any],
                         version: str | None = None) -> dict[str, Any]:
            written.update(status)
            return {"metadata": {"namespace": namespace, "name": name}, "status": status}

    ClusterStatusStore(Api()).write(app, store.data[app.key])  # type: ignore[arg-type]
    assert written["history"] and written["conditions"]
    assert instance_problems(status_schema(), written) == []
    runner.close()


def test_a_revision_that_changes_nothing_here_keeps_self_heal_off_working(
        tmp_path: Path, repo: WorkRepo) -> None:
    """A commit elsewhere in the repository is the application's new applied revision; drift
    after it is still only reported with selfHeal off (not synced as a 'new revision')."""
    out = tmp_path / "out"
    app = Application.model_validate(app_doc("shop", f"git+file://{repo.path}@main",
                                             f"dir:{out}", selfHeal=False))
    runner = AppReconciler(app, MemoryStatusStore())
    runner.reconcile("start")
    repo.write({"README.md": "unrelated"})
    repo.commit("docs")
    outcome = runner.reconcile("interval")
    assert outcome.status.last_applied_revision.endswith(repo.head())
    drift(out)
    outcome = runner.reconcile("interval")
    assert not outcome.synced and outcome.reasons == ("DriftDetected",)
    assert "tampered" in object_file(out, "one").read_text()
    runner.close()


def test_a_rollback_to_a_revision_the_source_lacks_writes_nothing(tmp_path: Path,
                                                                   repo: WorkRepo) -> None:
    out = tmp_path / "out"
    files = write_apps(tmp_path / "apps.yaml",
                       app_doc("shop", f"git+file://{repo.path}@main", f"dir:{out}",
                               selfHeal=False))
    catalog = FileCatalog([files])
    app = find_application(catalog, "shop")
    sync_now(catalog, app)
    before = catalog.store.read(app)
    with pytest.raises(InputError, match=r"cannot roll back to deadbeef"):
        rollback(catalog, app, "deadbeef")
    assert catalog.store.read(app) == before  # not suspended, no history entry
    catalog.close()


def test_an_unreachable_target_or_source_never_stops_the_others_nor_shows_credentials(
        tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """One application whose `k8s:` target (where its status lives) is down and one whose
    Git source, with a password in its URL, is down: `gitops run --once` and `gitops status`
    still reconcile and list the third, exit 1, and no credential appears anywhere."""
    pytest.importorskip("kubernetes")
    from gitops.cli import main

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "tok-SECRET-123"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    files = write_apps(
        tmp_path / "apps.yaml",
        app_doc("good", f"dir:{src}", f"dir:{tmp_path / 'out'}"),
        {**app_doc("dead", f"dir:{src}", "k8s:"),
         "spec": {**app_doc("dead", f"dir:{src}", "k8s:")["spec"],
                  "target": {"url": "k8s:", "options": {"kubeconfig": str(kubeconfig)}}}},
        app_doc("creds", "git+https://alice:s3cr3tpass@127.0.0.1:1/repo.git@main",
                f"dir:{tmp_path / 'out2'}"),
    )
    args = ["-f", str(files), "-o", "json"]
    assert main(["run", "--once", "--metrics-addr", "off", *args]) == 1
    once = {a["name"]: a for a in json.loads(capsys.readouterr().out)["applications"]}
    assert once["good"]["sync"] == "Synced" and once["good"]["health"] == "Healthy"
    assert "API server unreachable" in once["dead"]["message"]
    assert "cannot connect" in once["creds"]["message"]
    assert main(["status", *args]) == 1
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)["applications"]}
    assert listed["good"]["sync"] == "Synced" and "cannot read its status" in listed[
        "dead"]["message"]
    shown = json.dumps([once, listed]) + caplog.text + capsys.readouterr().err + "".join(
        p.read_text() for p in tmp_path.rglob("*.json"))
    for secret in ("s3cr3tpass", "tok-SECRET-123"):
        assert secret not in shown
