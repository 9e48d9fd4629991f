"""The asyncio API: the engine's :class:`~gitops.engine.Reconciler` for event loops.

For programs that already run an event loop (kopf, aiohttp, FastAPI)::

    async with await gitops.aio.Reconciler.open("dir:deploy", "k8s:", prune=True) as reconciler:
        result = await reconciler.sync()
        async for result in reconciler.run(interval=60):
            ...

Every call runs the blocking engine in a worker thread, so this module holds no reconcile
logic of its own: what a plan, a sync or a loop iteration does (and reports) is exactly
what :mod:`gitops.engine` does. It must never run engine work on the event loop's thread,
nor use the loop's default executor (kopf and others share it and may size it for
themselves): the threads are a bounded pool of its own (see :data:`THREADS`).

Cancelling the task that awaits :meth:`Reconciler.sync` works like Ctrl-C on the blocking
engine: the resource in flight is finished, nothing more is attempted, the inventory is
written, and only then does the ``CancelledError`` propagate (its ``__cause__`` is the
engine's :class:`~gitops.errors.SyncInterrupted`, which carries the partial result).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from gitops import engine
from gitops.model import Event, Plan, SyncResult
from gitops.sources.base import Source
from gitops.targets.base import Target

__all__ = ["THREADS", "AsyncEventHandler", "Pool", "Reconciler", "shared_executor"]

log = logging.getLogger("gitops.aio")

#: How many worker threads the shared pool has: at most this many engine calls (plans,
#: syncs) run at once across all reconcilers of the process that use it; more wait their
#: turn. Few on purpose: the engine's CPU work holds the GIL, and each thread busy with it
#: lengthens the loop's wait for the GIL; its network waits do not.
THREADS = 4

#: An event subscriber; called in the event loop's thread.
AsyncEventHandler = Callable[[Event], object]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_pool: Pool | None = None
_pool_lock = threading.Lock()


class Pool(Executor):
    """``threads`` worker threads named ``NAME-N``, all started when the pool is made.

    They are started from a thread of their own: starting a thread waits until it runs,
    which would stall an event loop that made the pool (``ThreadPoolExecutor`` starts
    its threads in ``submit``, on the caller's thread). Work never started can be
    cancelled (``Future.cancel()``). Daemon threads: they do not keep a finished program
    alive (a cancelled sync has written its inventory before its task ends).
    """

    def __init__(self, threads: int, name: str = "gitops-aio") -> None:
        if threads < 1:
            raise ValueError(f"a pool needs at least one thread, not {threads}")
        self.threads = threads
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._workers = [threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        self._shut = False
        threading.Thread(target=self._start, name=f"{name}-starter", daemon=True).start()

    def _start(self) -> None:
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Queue ``fn(*args, **kwargs)``; its future."""
        if self._shut:
            raise RuntimeError("the pool is shut down")
        future: Future[_T] = Future()
        self._work.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, work = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it started
            try:
                result = work()
            except BaseException as exc:  # SyncInterrupted is a KeyboardInterrupt
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once the work queued before is done (or cancelled, with
        ``cancel_futures``)."""
        self._shut = True
        while cancel_futures:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._workers:
            self._work.put(None)
        if wait:
            for worker in self._workers:
                if worker.is_alive():
                    worker.join()


def shared_executor() -> Pool:
    """The pool every :class:`Reconciler` uses unless given one: :data:`THREADS` threads
    named ``gitops-aio-N``, made on first use and shared by all event loops."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool(THREADS)
        return _pool


class Reconciler:
    """Reconciles one source into one target from an event loop.

    Takes what :class:`gitops.Reconciler` takes (``source`` and ``target`` as plugin
    objects or URLs, every option as a keyword: ``name``, ``prune``, ``wait``, ...) and
    builds one, in the caller's thread. Opening URLs mostly reads local files, but a
    ``k8s:`` kubeconfig may run an exec credential plugin (``aws eks get-token``, ...) or
    refresh an OIDC token: from an event loop, make it with ``await``
    :meth:`Reconciler.open`, which builds it in a worker thread.
    ``executor`` runs the engine's calls: by default :func:`shared_executor`, a pool of
    :data:`THREADS` threads shared by all reconcilers; pass your own to size it otherwise.
    Calls on one reconciler run one at a time, in the order they were made; calls on
    different reconcilers run concurrently and never block the loop.

    Close it (``async with`` or :meth:`aclose`) to close the source and target it opened.
    """

    def __init__(
        self,
        source: Source | str,
        target: Target | str,
        *,
        executor: Executor | None = None,
        **options: Any,
    ) -> None:
        _refuse_on_event(options)
        self._attach(engine.Reconciler(source, target, **options), executor)

    @classmethod
    async def open(
        cls,
        source: Source | str,
        target: Target | str,
        *,
        executor: Executor | None = None,
        **options: Any,
    ) -> Self:
        """``Reconciler(source, target, ...)``, built in a worker thread: opening the URLs
        (a kubeconfig's exec credential plugin, say) never blocks the loop. Cancelled
        while building, what was opened is closed."""
        _refuse_on_event(options)
        pool = executor if executor is not None else shared_executor()
        running = pool.submit(_no_stop_iteration, functools.partial(
            engine.Reconciler, source, target, **options))
        done = asyncio.wrap_future(running)
        try:
            built = await asyncio.shield(done)
        except asyncio.CancelledError:
            if not running.cancel():
                await _settled(done)
                if not done.cancelled() and done.exception() is None:
                    await asyncio.wrap_future(pool.submit(done.result().close))
            raise
        reconciler = cls.__new__(cls)
        reconciler._attach(built, executor)
        return reconciler

    def _attach(self, built: engine.Reconciler, executor: Executor | None) -> None:
        self.engine = built
        """The blocking reconciler every call runs (its ``options``, ``source``, ``target``)."""
        self._executor = executor if executor is not None else shared_executor()
        self._handlers: list[AsyncEventHandler] = []
        self._pending: list[Event] = []  # events on their way to the loop
        self._pending_lock = threading.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()  # async handlers still running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = asyncio.Lock()  # one engine call at a time: the engine is not thread-safe
        self._closed = False
        self._watches: list[Callable[[], None]] = []  # how to stop the drift watches of run()s
        self.engine.subscribe(self._forward)

    @property
    def name(self) -> str:
        """The inventory name."""
        return self.engine.name

    # -- events --------------------------------------------------------------------

    def subscribe(self, handler: AsyncEventHandler) -> None:
        """Call ``handler`` with every :class:`~gitops.model.Event` from now on, in the
        event loop's thread (the loop the call that caused it was awaited from).

        The events of a call are all delivered before that call returns. A handler that
        raises is logged and skipped; it never stops a sync. A handler that returns an
        awaitable (an ``async def``) has it run as a task of that loop.
        """
        self._handlers.append(handler)

    def _forward(self, event: Event) -> None:
        """The engine's subscriber (a worker thread): queue the event for the loop.

        One wake-up of the loop per batch, not per event: each wake-up costs the loop a
        turn at the GIL, which busy worker threads make dear.
        """
        loop = self._loop
        if loop is None or not self._handlers:
            return
        with self._pending_lock:
            self._pending.append(event)
            if len(self._pending) > 1:
                return  # a delivery is already scheduled
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._pending_lock:
            events, self._pending = self._pending, []
        for event in events:
            for handler in self._handlers:
                try:
                    outcome = handler(event)
                    if asyncio.iscoroutine(outcome):
                        task = asyncio.ensure_future(outcome)
                        self._tasks.add(task)  # the loop keeps only a weak reference
                        task.add_done_callback(self._handled)
                except Exception:  # a subscriber's bug must never stop a sync
                    log.exception("event handler %r failed on %s; continuing", handler,
                                  event.reason)

    def _handled(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async event handler failed; continuing", exc_info=task.exception())

    # -- calls -----------------------------------------------------------------------

    async def plan(self) -> Plan:
        """What :meth:`gitops.Reconciler.plan` returns (reads only).

        Cancelled, the plan in progress is let finish in its thread and dropped.
        """
        return await self._call(self.engine.plan)

    async def sync(self, plan: Plan | None = None) -> SyncResult:
        """What :meth:`gitops.Reconciler.sync` returns (plans first unless given ``plan``).

        Cancelled, it stops as Ctrl-C stops the blocking engine (finishes the write in
        flight, attempts nothing more, writes the inventory) and then raises
        ``asyncio.CancelledError`` with the :class:`~gitops.errors.SyncInterrupted` as
        its ``__cause__``. (A sync with nothing left to write when the cancel came ends
        normally in its thread; the task still ends cancelled, as asyncio expects.)
        """
        cancel = threading.Event()
        return await self._call(lambda: self.engine.sync(plan, cancel=cancel), cancel)

    async def run(
        self, interval: float = 60.0, *, iterations: int | None = None
    ) -> AsyncGenerator[SyncResult, None]:
        """Sync every ``interval`` seconds, yielding each result (self-healing drift).

        As :meth:`gitops.Reconciler.run`: whatever one iteration raises is reported as a
        ``ReconcileError`` event and the loop goes on; with a target that
        ``supports_watch``, drift starts the next sync at once (after a ``DriftDetected``
        event). It ends after ``iterations`` or when the task is cancelled (a sync in
        progress stops as :meth:`sync` does). The loop sleeps on the event loop, holding
        no thread between syncs. Leaving an ``async for`` early: close the generator
        (``contextlib.aclosing``) to stop watching at once; :meth:`aclose` stops it too.
        Closing the reconciler ends the loop (``RuntimeError``, as any call after it).
        """
        drift = asyncio.Event()
        on_drift = _setter(drift)
        unsubscribe = await self._call(lambda: self.engine._watch_drift(on_drift))
        if unsubscribe is not None:
            self._watches.append(unsubscribe)
        count = 0
        try:
            while iterations is None or count < iterations:
                count += 1
                drift.clear()
                try:
                    result = await self.sync()
                except Exception as exc:
                    if self._closed:
                        raise  # not an iteration's failure: the loop is over
                    self.engine._report_iteration_error(exc)
                else:
                    yield result
                if iterations is not None and count >= iterations:
                    break
                if await _drift_within(drift, interval):
                    self.engine._emit("DriftDetected",
                                      f"{self.engine.target.url}: an owned object changed")
        finally:
            if unsubscribe is not None and unsubscribe in self._watches:  # else aclose did
                # Listed until done: an aclose that gets the turn first stops it instead.
                with contextlib.suppress(Exception):
                    await self._call(unsubscribe)
                with contextlib.suppress(ValueError):
                    self._watches.remove(unsubscribe)

    async def _call(self, work: Callable[[], _T], cancel: threading.Event | None = None) -> _T:
        """Run ``work`` in the executor, after the calls before it; see :meth:`sync` on cancel.

        A call still waiting its turn when :meth:`aclose` closed the reconciler is refused.
        """
        self._check_open()
        async with self._turn:
            self._check_open()
            return await self._run(work, cancel)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"gitops.aio.Reconciler {self.name!r} is closed")

    async def _run(self, work: Callable[[], _T], cancel: threading.Event | None, *,
                   finish: bool = False) -> _T:
        """Under the turn: ``work`` in the executor (see :meth:`sync` on cancel).

        With ``finish``, cancelling the caller never drops ``work`` that has not started:
        it still runs, and the ``CancelledError`` comes once it is done.
        """
        self._loop = asyncio.get_running_loop()
        running: Future[_T] = self._executor.submit(_no_stop_iteration, work)
        done = asyncio.wrap_future(running)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError as cancelled:
            if not finish and running.cancel():  # it had not started: nothing happened
                raise
            if cancel is not None:
                cancel.set()
            await _settled(done)
            if not done.cancelled() and done.exception() is not None:
                cancelled.__cause__ = done.exception()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the drift watches of :meth:`run` loops, then close the source and target
        this reconciler opened from URLs (after the call in progress, if any).
        Idempotent; a call after it (or still waiting its turn) raises ``RuntimeError``."""
        if self._closed:
            return
        async with self._turn:
            if self._closed:
                return
            self._closed = True  # from now on, calls waiting their turn are refused
            watches, self._watches = self._watches, []
            # finish: a cancelled aclose (a program shutting down) still closes
            await self._run(functools.partial(_close, self.engine, watches), None, finish=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _refuse_on_event(options: dict[str, Any]) -> None:
    if "on_event" in options:
        raise TypeError("gitops.aio.Reconciler: use subscribe(handler), not on_event=")


def _close(reconciler: engine.Reconciler, watches: list[Callable[[], None]]) -> None:
    """Stop ``watches`` (whatever each raises), then close ``reconciler``."""
    for unsubscribe in watches:
        try:
            unsubscribe()
        except Exception:
            log.exception("stopping a drift watch of %s failed; closing anyway", reconciler.name)
    reconciler.close()


def _no_stop_iteration(work: Callable[[], _T]) -> _T:
    """``work()``, a ``StopIteration`` it raises (a plugin's bug) turned into RuntimeError:
    an asyncio future cannot carry one, and its awaiter would wait forever."""
    try:
        return work()
    except StopIteration as exc:
        raise RuntimeError(f"{type(exc).__name__} raised in gitops.aio work: {exc!r}") from exc


def _setter(flag: asyncio.Event) -> Callable[[], None]:
    """A function any thread may call to set ``flag`` in the running loop."""
    loop = asyncio.get_running_loop()

    def set_flag() -> None:
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(flag.set)

    return set_flag


async def _drift_within(drift: asyncio.Event, interval: float) -> bool:
    """Wait ``interval`` seconds, less if drift is seen; True on drift."""
    try:
        await asyncio.wait_for(drift.wait(), interval)
    except TimeoutError:
        return False
    return True


async def _settled(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, whatever cancels the waiter meanwhile."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({future})


