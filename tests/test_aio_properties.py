"""The engine's hypothesis properties (tests/test_engine_properties.py), run again through
gitops.aio: the same test functions, with their ``Reconciler`` swapped for an adapter that
awaits gitops.aio.Reconciler on an event loop in another thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import test_engine_properties as properties

from gitops import Plan, SyncResult, aio

_T = TypeVar("_T")


class Loop:
    """An event loop running in a thread of its own, for blocking code to await on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aio-adapter-loop")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class BlockingAdapter:
    """The engine's blocking interface (construct, ``plan()``, ``sync(plan)``), every call
    awaited through gitops.aio.Reconciler on the adapter loop."""

    loop: Loop
    calls = 0

    def __init__(self, source: Any, target: Any, **options: Any) -> None:
        self.reconciler = aio.Reconciler(source, target, **options)

    def plan(self) -> Plan:
        BlockingAdapter.calls += 1
        return self.loop.run(self.reconciler.plan())

    def sync(self, plan: Plan | None = None) -> SyncResult:
        BlockingAdapter.calls += 1
        return self.loop.run(self.reconciler.sync(plan))


@pytest.fixture
def through_aio(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    loop = Loop()
    BlockingAdapter.loop, BlockingAdapter.calls = loop, 0
    monkeypatch.setattr(properties, "Reconciler", BlockingAdapter)
    try:
        yield
    finally:
        loop.close()


@pytest.mark.usefixtures("through_aio")
def test_sync_converges_is_idempotent_and_prunes_only_owned_through_aio() -> None:
    properties.test_sync_converges_is_idempotent_and_prunes_only_owned()
    assert BlockingAdapter.calls > 0


@pytest.mark.usefixtures("through_aio")
def test_invalid_input_leaves_the_target_byte_for_byte_unchanged_through_aio() -> None:
    properties.test_invalid_input_leaves_the_target_byte_for_byte_unchanged()
    assert BlockingAdapter.calls > 0
