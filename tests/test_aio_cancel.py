"""Cancellation: the engine's cooperative ``sync(cancel=...)`` and a cancelled ``await sync()``
end as Ctrl-C does: the write in flight finishes, nothing more is attempted, the inventory
is written (still owning all the sync could have created), SyncInterrupted carries the result."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_aio import write_configmaps

from gitops import HealthStatus, Outcome, Reconciler, Resource, SyncInterrupted, aio
from gitops.sources.directory import DirectorySource
from gitops.testing import MemoryTarget


class GatedTarget(MemoryTarget):
    """The first real apply blocks until released (``entered`` says it is in flight)."""

    supports_dry_run = False

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        if not dry_run and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10), "the test never released the apply"
        return super().apply(resource, dry_run=dry_run)


def check_interrupted(result: Any, target: MemoryTarget, names: list[str]) -> None:
    """One change applied (the one in flight), the others not attempted; inventory owns all."""
    outcomes = [(r.change.key.name, r.outcome, r.message) for r in result.results]
    assert outcomes[0][:2] == (names[0], Outcome.SUCCEEDED)
    assert all(o is Outcome.SKIPPED and "interrupted" in m for _, o, m in outcomes[1:])
    assert [k.name for k in target.objects()] == [names[0]]
    inventory = target.read_inventory("app")
    assert inventory is not None
    assert sorted(k.name for k in inventory.keys) == names, "widened: owns all it may create"


def test_engine_sync_stops_before_the_next_write_when_cancel_is_set(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    write_configmaps(tmp_path, names)
    target = GatedTarget()
    cancel = threading.Event()
    reasons: list[str] = []
    reconciler = Reconciler(DirectorySource(tmp_path), target, name="app",
                            on_event=lambda e: reasons.append(e.reason))
    outcome: list[BaseException] = []

    def sync() -> None:
        try:
            reconciler.sync(cancel=cancel)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=sync)
    worker.start()
    assert target.entered.wait(5)
    cancel.set()
    target.release.set()
    worker.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], SyncInterrupted)
    check_interrupted(outcome[0].result, target, names)
    assert reasons[-1] == "SyncInterrupted"
    # the next sync (no cancel) finishes the job
    assert reconciler.sync().succeeded
    assert sorted(k.name for k in target.objects()) == names


def test_engine_cancel_ends_a_health_wait_at_once(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a", "b"])

    class NeverHealthy(MemoryTarget):
        def health(self, resource: Resource) -> HealthStatus:
            return HealthStatus.PROGRESSING

    target = NeverHealthy()
    cancel = threading.Event()
    reconciler = Reconciler(DirectorySource(tmp_path), target, name="app", wait=True,
                            wait_timeout=30, wait_interval=0.05)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(SyncInterrupted) as caught:
        reconciler.sync(cancel=cancel)
    assert time.monotonic() - started < 5, "the wait did not notice the cancel"
    assert caught.value.result.results  # the applied wave is reported
    assert target.read_inventory("app") is not None


def test_a_cancelled_sync_task_finishes_the_write_in_flight_and_writes_the_inventory(
    tmp_path: Path,
) -> None:
    names = ["a", "b", "c"]
    write_configmaps(tmp_path, names)
    target = GatedTarget()

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), target, name="app") as reconciler:
            task = asyncio.create_task(reconciler.sync())
            while not target.entered.is_set():
                await asyncio.sleep(0.005)
            task.cancel()
            await asyncio.sleep(0.05)
            assert not task.done(), "cancelled, it still waits for the write in flight"
            target.release.set()
            with pytest.raises(asyncio.CancelledError) as caught:
                await task
            interrupted = caught.value.__cause__
            assert isinstance(interrupted, SyncInterrupted)
            check_interrupted(interrupted.result, target, names)
            assert (await reconciler.sync()).succeeded, "the reconciler is usable afterwards"

    asyncio.run(main())


def test_a_timeout_around_sync_still_times_out(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a", "b"])
    target = GatedTarget()

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), target, name="app") as reconciler:
            threading.Timer(0.3, target.release.set).start()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await reconciler.sync()
            assert target.read_inventory("app") is not None

    asyncio.run(main())


def test_a_sync_cancelled_before_it_started_does_nothing(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    target = GatedTarget()
    busy = threading.Event()
    one_thread = ThreadPoolExecutor(max_workers=1)

    async def main() -> None:
        blocker = asyncio.get_running_loop().run_in_executor(one_thread, busy.wait, 5)
        async with aio.Reconciler(DirectorySource(tmp_path), target, name="app",
                                  executor=one_thread) as reconciler:
            task = asyncio.create_task(reconciler.sync())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            busy.set()
            await blocker
        assert target.counts()["read_inventory"] == 0, "it never started"

    try:
        asyncio.run(main())
    finally:
        one_thread.shutdown()
