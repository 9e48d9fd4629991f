"""The engine's error boundaries, ownership rules and incremental planning (issue 8)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_engine import CM_KEY, DEPLOY_KEY, cm, deploy, ns, write

from gitops import Event, Outcome, Reconciler, ResourceKey
from gitops.engine import default_name
from gitops.errors import ConflictError, SyncInterrupted, UnreachableError
from gitops.model import HealthStatus, Resource
from gitops.sources.directory import DirectorySource
from gitops.testing import MemoryTarget

WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    write(root, {"all.yaml": [ns("apps"), cm("one"), deploy("web")]})
    return root


def rec(src: Path, target: Any, **options: Any) -> Reconciler:
    options.setdefault("name", "app")
    options.setdefault("sleep", lambda s: None)
    return Reconciler(DirectorySource(src), target, **options)


# -- scope is placed after check(), never cached ------------------------------------------


class LearningTarget(MemoryTarget):
    """A target that learns a kind's scope between two plans (a CRD installed by someone)."""

    def __init__(self) -> None:
        super().__init__()
        self.widget_namespaced: bool | None = None

    def is_namespaced(self, group: str, kind: str) -> bool | None:
        if (group, kind) == ("example.com", "Widget"):
            return self.widget_namespaced
        return super().is_namespaced(group, kind)


def test_a_kind_whose_scope_becomes_known_between_two_plans_is_placed_anew(src: Path) -> None:
    (src / "widget.yaml").write_text(WIDGET)
    target = LearningTarget()
    reconciler = rec(src, target)
    first = {r.key for r in reconciler.plan().desired if r.key.kind == "Widget"}
    assert first == {ResourceKey("example.com", "Widget", "default", "w")}
    target.widget_namespaced = False  # the CRD says Cluster; same revision, same reconciler
    second = {r.key for r in reconciler.plan().desired if r.key.kind == "Widget"}
    assert second == {ResourceKey("example.com", "Widget", "", "w")}


# -- error boundaries ---------------------------------------------------------------------


def test_a_subscriber_that_raises_never_aborts_the_sync(src: Path) -> None:
    target = MemoryTarget()
    seen: list[str] = []

    def broken(event: Event) -> None:
        seen.append(event.reason)
        if event.reason == "Created":
            raise RuntimeError("subscriber bug")

    result = rec(src, target, on_event=broken).sync()
    assert result.succeeded and len(result.results) == 3
    assert seen.count("Created") == 3 and seen[-1] == "SyncSucceeded"
    stored = target.read_inventory("app")
    assert stored is not None and stored.revision == result.revision


class SickTarget(MemoryTarget):
    supports_health = True

    def health(self, resource: Resource) -> HealthStatus:
        if resource.key == DEPLOY_KEY:
            raise RuntimeError("health plugin bug")
        return HealthStatus.HEALTHY


def test_a_health_check_that_raises_becomes_a_failed_result(src: Path) -> None:
    target = SickTarget()
    result = rec(src, target, wait=True, wait_interval=0.01).sync()
    by_key = {r.change.key: r for r in result.results}
    assert by_key[DEPLOY_KEY].outcome is Outcome.FAILED
    assert "health check failed: RuntimeError: health plugin bug" in by_key[DEPLOY_KEY].message
    assert by_key[CM_KEY].outcome is Outcome.SUCCEEDED
    stored = target.read_inventory("app")
    assert stored is not None and DEPLOY_KEY in stored.keys, "the final inventory was written"


def test_run_survives_any_exception_of_one_iteration(src: Path) -> None:
    target = MemoryTarget()
    calls = {"n": 0}
    original = target.live

    def flaky_live(keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("plugin bug")
        return original(keys)

    target.live = flaky_live  # type: ignore[method-assign]
    events: list[Event] = []
    results: list[Any] = []
    rec(src, target, on_event=events.append).run(
        interval=0, iterations=2, on_result=results.append
    )
    errors = [e for e in events if e.reason == "ReconcileError"]
    assert len(errors) == 1 and "ZeroDivisionError: plugin bug" in errors[0].message
    assert len(results) == 1 and results[0].succeeded


class RaisingTarget(MemoryTarget):
    """Raises what ``fault(n)`` returns on the n-th real (not dry-run) apply, if anything."""

    def __init__(self, fault: Callable[[int], BaseException | None]) -> None:
        super().__init__()
        self.fault = fault
        self.applies = 0

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        if not dry_run:
            self.applies += 1
            error = self.fault(self.applies)
            if error is not None:
                raise error
        return super().apply(resource, dry_run=dry_run)


def gone_after_the_first_write(n: int) -> BaseException | None:
    """An API server that goes away after the first write."""
    return UnreachableError("connection refused") if n > 1 else None


def ctrl_c_on_the_second_write(n: int) -> BaseException | None:
    """Ctrl-C arrives while the second object is being applied."""
    return KeyboardInterrupt() if n == 2 else None


def test_after_the_target_becomes_unreachable_the_rest_is_skipped_at_once(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    write(root, {"all.yaml": [ns("apps"), *(cm(f"c{i}") for i in range(200))]})
    target = RaisingTarget(gone_after_the_first_write)
    started = time.monotonic()
    result = rec(root, target, retries=5, retry_backoff=10.0, sleep=time.sleep).sync()
    assert time.monotonic() - started < 5, "no retry with backoff against a gone target"
    outcomes = [r.outcome for r in result.results]
    assert outcomes.count(Outcome.SUCCEEDED) == 1 and outcomes.count(Outcome.FAILED) == 1
    assert outcomes.count(Outcome.SKIPPED) == 199
    skipped = [r for r in result.results if r.outcome is Outcome.SKIPPED]
    assert all("unreachable" in r.message for r in skipped)
    assert target.applies == 2, "nothing more was attempted"
    stored = target.read_inventory("app")
    assert stored is not None and len(stored.keys) == 201, "everything that may exist stays owned"


def test_ctrl_c_abandons_the_resource_in_flight_and_keeps_the_inventory(src: Path) -> None:
    target = RaisingTarget(ctrl_c_on_the_second_write)
    with pytest.raises(SyncInterrupted) as info:
        rec(src, target).sync()
    assert isinstance(info.value, KeyboardInterrupt)
    result = info.value.result
    outcomes = [(r.change.key.kind, r.outcome) for r in result.results]
    assert outcomes == [("Namespace", Outcome.SUCCEEDED), ("ConfigMap", Outcome.FAILED),
                        ("Deployment", Outcome.SKIPPED)]
    assert "interrupted while being applied" in result.results[1].message
    assert "interrupted" in result.results[2].message
    stored = target.read_inventory("app")
    assert stored is not None and {CM_KEY, DEPLOY_KEY} <= stored.keys
    assert stored.revision == "", "the revision did not advance"


# -- ownership across inventories -----------------------------------------------------------


class SharedTarget(MemoryTarget):
    """Answers owners() from the inventories it stores (as the file tree does)."""

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> Mapping[ResourceKey, str]:
        wanted = set(keys)
        found: dict[ResourceKey, str] = {}
        for name in ("a", "b"):
            stored = self.read_inventory(name)
            if name != inventory and stored is not None:
                found.update((k, name) for k in stored.keys & wanted)
        return found


def test_objects_of_another_inventory_are_refused_unless_adopting(src: Path) -> None:
    target = SharedTarget()
    assert rec(src, target, name="a").sync().succeeded
    with pytest.raises(ConflictError, match=r"owned by another inventory .*'a'.*adopt"):
        rec(src, target, name="b").plan()
    assert target.read_inventory("b") is None
    assert rec(src, target, name="b", adopt=True).sync().succeeded


def test_prune_never_deletes_what_another_inventory_lists(src: Path, tmp_path: Path) -> None:
    target = SharedTarget()
    assert rec(src, target, name="a").sync().succeeded
    assert rec(src, target, name="b", adopt=True).sync().succeeded
    write(src, {"all.yaml": [ns("apps"), deploy("web")]})  # b drops the ConfigMap
    result = rec(src, target, name="b", adopt=True, prune=True).sync()
    assert result.succeeded and CM_KEY in result.plan.orphaned
    assert CM_KEY in target.objects(), "a still declares it"


class LockedTarget(MemoryTarget):
    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Lock()

    def lock(self, inventory: str) -> Any:
        if not self.held.acquire(blocking=False):
            raise ConflictError(inventory, "another sync is running", url=self.url)
        target = self

        class Held:
            def __enter__(self) -> None:
                return None

            def __exit__(self, *exc: object) -> None:
                target.held.release()

        return Held()


def test_sync_holds_the_target_lock_and_a_concurrent_sync_conflicts(src: Path) -> None:
    target = LockedTarget()
    with target.lock("someone"):
        with pytest.raises(ConflictError, match="another sync is running"):
            rec(src, target).sync()
        assert target.objects() == {}, "the loser changed nothing"
    assert rec(src, target).sync().succeeded
    assert rec(src, target, dry_run=True).sync().succeeded, "a dry run needs no lock"


def test_a_plan_made_before_another_sync_is_refused(src: Path) -> None:
    target = MemoryTarget()
    stale = rec(src, target).plan()
    assert rec(src, target).sync().succeeded
    with pytest.raises(ConflictError, match="changed since this plan"):
        rec(src, target).sync(stale)


def test_a_plan_made_before_another_inventory_claimed_its_objects_is_refused(
    src: Path, tmp_path: Path
) -> None:
    """The CLI plans, prints, then syncs: a sync under another name in between must not
    have its objects taken over (or pruned) on the stale plan's word."""
    from gitops.targets.filetree import FileTreeTarget

    for target in (MemoryTarget(), FileTreeTarget(tmp_path / "out")):
        stale = rec(src, target, name="a").plan()
        assert rec(src, target, name="b").sync().succeeded
        before = dict(target.live(r.key for r in stale.desired))
        with pytest.raises(ConflictError, match="inventory 'b'"):
            rec(src, target, name="a").sync(stale)
        assert target.read_inventory("a") is None, "the loser wrote nothing"
        assert dict(target.live(r.key for r in stale.desired)) == before


def test_a_stale_plan_never_prunes_what_another_inventory_now_lists(src: Path) -> None:
    target = MemoryTarget()
    assert rec(src, target, name="a").sync().succeeded
    write(src, {"all.yaml": [ns("apps"), cm("one")]})  # web leaves a's source
    stale = rec(src, target, name="a", prune=True).plan()
    assert [c.key for c in stale.changes] == [DEPLOY_KEY]
    other = src.parent / "other"
    other.mkdir()
    write(other, {"all.yaml": [deploy("web")]})
    assert Reconciler(DirectorySource(other), target, name="b", adopt=True).sync().succeeded
    with pytest.raises(ConflictError, match="not pruned"):
        rec(src, target, name="a", prune=True).sync(stale)
    assert DEPLOY_KEY in target.objects()


# -- default inventory names ----------------------------------------------------------------


def test_the_default_inventory_name_is_derived_from_the_source(tmp_path: Path) -> None:
    a, b = tmp_path / "team-a" / "app", tmp_path / "team-b" / "app"
    for root in (a, b):
        root.mkdir(parents=True)
        write(root, {"all.yaml": [cm("x")]})
    name_a = Reconciler(DirectorySource(a), MemoryTarget()).name
    name_b = Reconciler(DirectorySource(b), MemoryTarget()).name
    assert name_a != name_b and name_a.startswith("team-a-app-") and len(name_a) <= 63
    assert Reconciler(DirectorySource(a), MemoryTarget()).name == name_a, "stable"
    assert default_name("git+https://h/org/repo.git#path=apps/shop").startswith("apps-shop-")


def test_an_inventory_written_by_another_source_is_reported(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        write(root, {"all.yaml": [cm("x")]})
    target = MemoryTarget()
    assert Reconciler(DirectorySource(a), target, name="shared").sync().succeeded
    events: list[Event] = []
    Reconciler(DirectorySource(b), target, name="shared", on_event=events.append).plan()
    taken = [e for e in events if e.reason == "InventoryTakenOver"]
    assert taken and taken[0].warning and str(a) in taken[0].message


# -- incremental planning -------------------------------------------------------------------


def test_a_replan_compares_only_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}.yaml").write_text(
            "\n---\n".join(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}-{j}}}\ndata: {{k: v}}"
                for j in range(5)
            )
        )
    target = MemoryTarget()
    reconciler = rec(root, target)
    assert reconciler.sync().succeeded
    noop = reconciler.plan()
    assert noop.in_sync and noop.diffed == 100, "the memory target returns fresh live objects"
    reconciler = rec(root, _StableLive())
    reconciler.sync()
    assert reconciler.plan().diffed == 100, "created, then compared once"
    assert reconciler.plan().diffed == 0, "same desired and live objects: nothing re-compared"
    (root / "f3.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c3-0}\ndata: {k: changed}\n"
    )
    plan = reconciler.plan()
    assert plan.diffed == 1 and [c.key.name for c in plan.changes] == ["c3-0"]


class _StableLive(MemoryTarget):
    """Returns the same live object while the stored object is unchanged (as dir: does)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[ResourceKey, tuple[str, Resource]] = {}

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        found = super().live(keys)
        stable: dict[ResourceKey, Resource] = {}
        for key, res in found.items():
            version = str(res.metadata.get("resourceVersion"))
            known = self._seen.get(key)
            if known is None or known[0] != version:
                known = (version, res)
                self._seen[key] = known
            stable[key] = known[1]
        return stable


def test_a_plan_for_another_target_is_refused(src: Path, tmp_path: Path) -> None:
    from gitops.errors import InputError
    from gitops.targets.filetree import FileTreeTarget

    plan = rec(src, FileTreeTarget(tmp_path / "one")).plan()
    with pytest.raises(InputError, match="plan is for target dir:"):
        rec(src, FileTreeTarget(tmp_path / "two")).sync(plan)
    assert not (tmp_path / "two").exists()
