"""gitops.aio.Reconciler: plan, sync and run from an event loop, events delivered into it,
the engine's work on a pool of its own, and closing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gitops import Event, aio, engine
from gitops.sources.directory import DirectorySource
from gitops.testing import MemoryTarget


def write_configmaps(root: Path, names: list[str], value: str = "1") -> None:
    for old in root.glob("*.yaml"):
        old.unlink()
    for name in names:
        (root / f"{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "team-a"}, "data": {"v": value}}))


class WatchedTarget(MemoryTarget):
    """A MemoryTarget that reports drift when the test says so."""

    supports_watch: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[Callable[[Any], None]] = []
        self.unsubscribed = threading.Event()

    def watch(self, handler: Callable[[Any], None]) -> Callable[[], None]:
        self.handlers.append(handler)
        return self.unsubscribed.set


def test_plan_and_sync_through_the_loop(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a", "b"])
    target = MemoryTarget()

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), target, prune=True) as reconciler:
            plan = await reconciler.plan()
            assert len(plan.changes) == 2
            result = await reconciler.sync(plan)
            assert result.succeeded and len(result.results) == 2
            assert (await reconciler.plan()).in_sync
            write_configmaps(tmp_path, ["a"])
            pruned = await reconciler.sync()
            assert [r.change.key.name for r in pruned.results] == ["b"]

    asyncio.run(main())
    assert sorted(k.name for k in target.objects()) == ["a"]


def test_engine_work_runs_on_the_pool_of_its_own_never_on_the_loop(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    threads: list[str] = []

    class Recording(MemoryTarget):
        def apply(self, resource: Any, *, dry_run: bool = False) -> Any:
            threads.append(threading.current_thread().name)
            return super().apply(resource, dry_run=dry_run)

    async def main() -> None:
        loop_thread = threading.current_thread().name
        async with aio.Reconciler(DirectorySource(tmp_path), Recording()) as reconciler:
            await reconciler.sync()
        assert loop_thread not in threads

    asyncio.run(main())
    assert threads and all(name.startswith("gitops-aio-") for name in threads)
    pool = {t.name for t in threading.enumerate() if t.name.startswith("gitops-aio-")}
    assert pool == {f"gitops-aio-{i}" for i in range(aio.THREADS)}


def test_events_reach_the_loop_thread_before_the_call_returns(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a", "b"])
    seen: list[tuple[str, str]] = []
    from_async: list[str] = []

    async def main() -> None:
        loop_thread = threading.current_thread().name

        def handler(event: Event) -> None:
            seen.append((event.reason, threading.current_thread().name))

        def broken(event: Event) -> None:
            raise RuntimeError("a subscriber's bug")

        async def async_handler(event: Event) -> None:
            from_async.append(event.reason)

        async with aio.Reconciler(DirectorySource(tmp_path), MemoryTarget()) as reconciler:
            reconciler.subscribe(broken)
            reconciler.subscribe(handler)
            reconciler.subscribe(async_handler)
            result = await reconciler.sync()
            assert result.succeeded
            # everything the sync reported was delivered before it returned
            assert [r for r, _ in seen] == ["Planned", "Created", "Created", "SyncSucceeded"]
            assert {thread for _, thread in seen} == {loop_thread}
            await asyncio.sleep(0)
            assert from_async == ["Planned", "Created", "Created", "SyncSucceeded"]

    asyncio.run(main())


def test_run_yields_results_reports_errors_and_goes_on(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    source = DirectorySource(tmp_path)
    reasons: list[str] = []
    results: list[int] = []

    async def main() -> None:
        async with aio.Reconciler(source, MemoryTarget(), prune=True) as reconciler:
            reconciler.subscribe(lambda e: reasons.append(e.reason))
            async for result in reconciler.run(0.01, iterations=3):
                results.append(len(result.results))
                (tmp_path / "bad.yaml").write_text("kind: ConfigMap\n")  # breaks iteration 2

    asyncio.run(main())
    assert results == [1], "the iterations that failed yield nothing"
    assert reasons.count("ReconcileError") == 2


def test_run_starts_the_next_sync_at_once_on_drift(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    target = WatchedTarget()

    async def main() -> list[str]:
        reasons: list[str] = []
        async with aio.Reconciler(DirectorySource(tmp_path), target) as reconciler:
            reconciler.subscribe(lambda e: reasons.append(e.reason))
            count = 0
            async with contextlib.aclosing(reconciler.run(3600)) as results:
                async for _ in results:
                    count += 1
                    if count == 2:
                        break
                    # someone else changes an owned object, seen from the watch's thread
                    key = next(iter(target.objects()))
                    target.mutate(key, lambda obj: obj["data"].update(v="drifted"))
                    threading.Thread(target=target.handlers[0], args=(None,)).start()
        return reasons

    reasons = asyncio.run(asyncio.wait_for(main(), 10))
    assert "DriftDetected" in reasons
    assert reasons.count("Updated") == 1, "the drift was healed by the second sync"
    assert target.unsubscribed.is_set(), "leaving the loop stops watching"


def test_closing_closes_what_it_opened_and_refuses_calls_after(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])

    async def main() -> None:
        reconciler = aio.Reconciler(f"dir:{tmp_path}", "mock:")
        closed: list[str] = []
        source = reconciler.engine.source
        original = source.close

        def close() -> None:
            closed.append("source")
            original()

        source.close = close  # type: ignore[method-assign]
        await reconciler.sync()
        await reconciler.aclose()
        await reconciler.aclose()  # idempotent
        assert closed == ["source"]
        with pytest.raises(RuntimeError, match="is closed"):
            await reconciler.plan()

    asyncio.run(main())


def test_on_event_is_refused_in_favour_of_subscribe(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="subscribe"):
        aio.Reconciler(DirectorySource(tmp_path), MemoryTarget(), on_event=print)


def test_calls_on_one_reconciler_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a", "b", "c"])
    active: list[int] = []
    overlap: list[int] = []

    class Counting(MemoryTarget):
        def live(self, keys: Any) -> Any:
            active.append(1)
            overlap.append(len(active))
            try:
                return super().live(keys)
            finally:
                active.pop()

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), Counting(), prune=True) as r:
            results = await asyncio.gather(r.sync(), r.sync(), r.plan(), r.sync())
        first, second, plan, third = results
        assert len(first.results) == 3
        assert second.results == () and third.results == () and plan.in_sync

    asyncio.run(main())
    assert overlap and max(overlap) == 1


def test_the_pool_runs_work_cancels_what_never_started_and_shuts_down() -> None:
    pool = aio.Pool(1, name="test-pool")
    gate = threading.Event()
    blocker = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    failing = pool.submit(interrupted)
    assert queued.cancel(), "work not started yet can be cancelled"
    gate.set()
    assert blocker.result(5) is True
    with pytest.raises(KeyboardInterrupt):  # SyncInterrupted is one: it reaches the caller
        failing.result(5)
    assert queued.cancelled()
    pool.shutdown()
    assert not any(t.name.startswith("test-pool-") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)
    with pytest.raises(ValueError, match="at least one thread"):
        aio.Pool(0)


def interrupted() -> None:
    raise KeyboardInterrupt


def test_a_call_queued_behind_aclose_is_refused_and_never_reaches_the_target(
    tmp_path: Path,
) -> None:
    write_configmaps(tmp_path, ["a"])
    target = MemoryTarget()

    async def main() -> None:
        reconciler = aio.Reconciler(DirectorySource(tmp_path), target)
        first = asyncio.create_task(reconciler.sync())
        await asyncio.sleep(0)  # first holds the turn
        closing = [asyncio.create_task(reconciler.aclose()) for _ in range(2)]
        await asyncio.sleep(0)
        late = asyncio.create_task(reconciler.sync())  # made after aclose: must not run
        assert (await first).succeeded
        await asyncio.gather(*closing)  # concurrent acloses are both fine
        with pytest.raises(RuntimeError, match="is closed"):
            await late

    asyncio.run(asyncio.wait_for(main(), 10))
    assert target.counts()["read_inventory"] == 1, "only the first sync read the target"


def test_run_ends_when_its_reconciler_is_closed(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    reasons: list[str] = []

    async def main() -> None:
        reconciler = aio.Reconciler(DirectorySource(tmp_path), MemoryTarget())
        reconciler.subscribe(lambda e: reasons.append(e.reason))
        synced = asyncio.Event()

        async def loop() -> None:
            async for _ in reconciler.run(0.01):
                synced.set()

        task = asyncio.create_task(loop())
        await synced.wait()
        await reconciler.aclose()
        with pytest.raises(RuntimeError, match="is closed"):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert "ReconcileError" not in reasons, "closing is no error of an iteration"


def test_leaving_run_without_aclosing_stops_the_watch_before_the_target_closes(
    tmp_path: Path,
) -> None:
    write_configmaps(tmp_path, ["a"])
    order: list[str] = []

    class Watched(WatchedTarget):
        def watch(self, handler: Callable[[Any], None]) -> Callable[[], None]:
            super().watch(handler)
            return lambda: order.append("unsubscribed")

        def close(self) -> None:
            order.append("closed")

    target = Watched()

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), target) as reconciler:
            reconciler.engine._own(target)  # as if opened from a URL: aclose closes it
            async for _ in reconciler.run(3600):
                break  # no aclosing(): the generator is finalized later, by the loop
        await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert order == ["unsubscribed", "closed"]


def test_a_cancelled_aclose_still_closes(tmp_path: Path) -> None:
    write_configmaps(tmp_path, ["a"])
    closed = threading.Event()
    busy = threading.Event()
    one_thread = aio.Pool(1, name="test-aclose")

    class Closing(MemoryTarget):
        def close(self) -> None:
            closed.set()

    async def main() -> None:
        target = Closing()
        reconciler = aio.Reconciler(DirectorySource(tmp_path), target, executor=one_thread)
        reconciler.engine._own(target)
        blocker = asyncio.wrap_future(one_thread.submit(busy.wait, 5))  # the pool is busy
        closing = asyncio.create_task(reconciler.aclose())
        await asyncio.sleep(0.05)
        closing.cancel()  # before its close could start
        busy.set()
        with pytest.raises(asyncio.CancelledError):
            await closing
        await blocker
        assert closed.is_set(), "cancelled, aclose still closed what it opened"
        with pytest.raises(RuntimeError, match="is closed"):
            await reconciler.plan()

    try:
        asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        one_thread.shutdown()


def test_a_plugin_raising_stopiteration_surfaces_instead_of_hanging(tmp_path: Path) -> None:
    """asyncio futures cannot carry StopIteration: it must not leave the call awaiting
    forever (holding the reconciler's turn); it arrives as RuntimeError, its cause kept."""
    write_configmaps(tmp_path, ["a"])

    class Buggy(MemoryTarget):
        def read_inventory(self, name: str) -> Any:
            return next(iter([]))  # a plugin's bug

    async def main() -> None:
        async with aio.Reconciler(DirectorySource(tmp_path), Buggy()) as reconciler:
            for call in (reconciler.plan, reconciler.sync):
                with pytest.raises(RuntimeError, match="StopIteration") as caught:
                    await asyncio.wait_for(call(), 5)
                assert isinstance(caught.value.__cause__, StopIteration)

    asyncio.run(asyncio.wait_for(main(), 20))


def test_open_runs_a_slow_kubeconfig_credential_plugin_off_the_loop(tmp_path: Path) -> None:
    """A ``k8s:`` kubeconfig's exec plugin runs when the target is opened: the constructor
    runs it on the loop's thread; ``await Reconciler.open()`` runs it in a worker."""
    pytest.importorskip("kubernetes")
    ran = tmp_path / "ran"
    plugin = tmp_path / "credential.sh"
    plugin.write_text(
        f"#!/bin/sh\ntouch {ran}\nsleep 0.5\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
        '"kind": "ExecCredential", "status": {"token": "t"}}\'\n')
    plugin.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin),
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    write_configmaps(tmp_path, ["a"])

    async def worst_lag_while(opening: Any) -> float:
        worst, stop = [0.0], asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                worst[0] = max(worst[0], time.perf_counter() - before - 0.01)

        probing = asyncio.create_task(probe())
        await asyncio.sleep(0.03)
        reconciler = await opening()
        stop.set()
        await probing
        assert ran.exists(), "the credential plugin ran"
        assert isinstance(reconciler, aio.Reconciler) and reconciler.name == "app"
        await reconciler.aclose()
        ran.unlink()
        return worst[0]

    target = f"k8s:?kubeconfig={kubeconfig}"

    async def main() -> None:
        async def constructed() -> aio.Reconciler:
            return aio.Reconciler(DirectorySource(tmp_path), target, name="app")

        async def opened() -> aio.Reconciler:
            return await aio.Reconciler.open(DirectorySource(tmp_path), target, name="app")

        assert await worst_lag_while(constructed) > 0.4, "the constructor blocks (why open exists)"
        assert await worst_lag_while(opened) < 0.3, "open() kept the loop running"

    asyncio.run(asyncio.wait_for(main(), 20))


def test_open_cancelled_while_opening_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_configmaps(tmp_path, ["a"])
    opening, closed = threading.Event(), threading.Event()

    class SlowToOpen(engine.Reconciler):
        def __init__(self, *args: Any, **options: Any) -> None:
            opening.set()
            time.sleep(0.2)  # a credential plugin
            super().__init__(*args, **options)

        def close(self) -> None:
            closed.set()
            super().close()

    monkeypatch.setattr(engine, "Reconciler", SlowToOpen)

    async def main() -> None:
        task = asyncio.create_task(aio.Reconciler.open(DirectorySource(tmp_path), "mock:"))
        while not opening.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert closed.is_set(), "what was opened meanwhile is closed"

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_run_closed_while_aclose_waits_its_turn_still_stops_watching(tmp_path: Path) -> None:
    """The generator's unsubscribe queued behind aclose: aclose stops the watch itself."""
    write_configmaps(tmp_path, ["a"])
    hold, held = threading.Event(), threading.Event()
    unsubscribed: list[str] = []

    class Watched(WatchedTarget):
        def watch(self, handler: Callable[[Any], None]) -> Callable[[], None]:
            super().watch(handler)
            return lambda: unsubscribed.append("watch")

        def read_inventory(self, name: str) -> Any:
            if hold.is_set():  # the plan below holds the turn until released
                held.set()
                assert release.wait(5), "the test never released the plan"
            return super().read_inventory(name)

    release = threading.Event()
    target = Watched()

    async def main() -> None:
        reconciler = aio.Reconciler(DirectorySource(tmp_path), target)
        results = reconciler.run(3600)
        await anext(results)  # watching now, suspended at its yield
        hold.set()
        planning = asyncio.create_task(reconciler.plan())
        while not held.is_set():
            await asyncio.sleep(0.005)
        closing = asyncio.create_task(reconciler.aclose())  # waits for the turn
        await asyncio.sleep(0.01)
        finishing = asyncio.create_task(results.aclose())  # its unsubscribe waits behind
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(planning, closing, finishing)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert unsubscribed == ["watch"]
