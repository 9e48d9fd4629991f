"""Concurrent reconcilers never block the event loop: a probe task that sleeps 10 ms in a
loop records its worst lateness while 20 reconcilers sync; it must stay under 50 ms.

Run it alone to see the figure: ``pytest -s tests/test_aio_loop_lag.py`` prints it. The
reconcilers use gitops.aio's shared pool (:data:`gitops.aio.THREADS` threads).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from gitops import aio
from gitops.sources.directory import DirectorySource
from gitops.testing import Latency, MemoryTarget

RECONCILERS = 20
OBJECTS = 40  # per reconciler
TICK = 0.010
MAX_LAG = 0.050
#: Each target call answers after 2 ms, as an API server over the network does: the
#: engine's threads then wait on I/O as they do in production, not on pure CPU (on a
#: loaded 2-core machine, 4 threads of pure-Python CPU work starve any other thread of
#: the GIL for 50-80 ms at times, whatever runs them).
LATENCY = 0.002


def write_app(root: Path, app: int, value: str) -> None:
    docs = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"cm-{i}", "namespace": f"app-{app}"},
             "data": {"value": value, "more": "x" * 200}} for i in range(OBJECTS)]
    docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": f"app-{app}"},
                 "spec": {"replicas": 2, "template": {"spec": {"containers": [
                     {"name": "web", "image": f"web:{value}"}]}}}})
    (root / "app.yaml").write_text(yaml.safe_dump_all(docs))


async def probe(worst: list[float], stop: asyncio.Event) -> None:
    """Sleep ``TICK`` again and again; record the worst lateness of a wake-up."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        worst[0] = max(worst[0], time.perf_counter() - before - TICK)


def test_twenty_reconcilers_syncing_never_block_the_loop(tmp_path: Path) -> None:
    roots = []
    for app in range(RECONCILERS):
        root = tmp_path / f"app-{app}"
        root.mkdir()
        write_app(root, app, "1")
        roots.append(root)
    targets = [MemoryTarget(faults=[Latency(LATENCY)]) for _ in roots]

    async def main() -> tuple[float, int]:
        reconcilers = [aio.Reconciler(DirectorySource(root), target, prune=True)
                       for root, target in zip(roots, targets, strict=True)]
        worst, synced = 0.0, 0
        for round_, value in enumerate(["1", "2"]):  # creates, then updates
            if round_:
                for app, root in enumerate(roots):
                    write_app(root, app, value)
            lag, stop = [0.0], asyncio.Event()
            probing = asyncio.create_task(probe(lag, stop))
            await asyncio.sleep(TICK * 3)  # the probe runs before the first sync starts
            results = await asyncio.gather(*(r.sync() for r in reconcilers))
            stop.set()
            await probing
            worst = max(worst, lag[0])
            assert all(r.succeeded for r in results)
            synced += sum(len(r.results) for r in results)
        for reconciler in reconcilers:
            await reconciler.aclose()
        return worst, synced

    worst, synced = asyncio.run(main())
    print(f"\nworst loop lag {worst * 1000:.1f} ms while {RECONCILERS} reconcilers "
          f"synced {synced} changes")
    assert synced == RECONCILERS * (OBJECTS + 1) * 2
    assert all(len(t.objects()) == OBJECTS + 1 for t in targets)
    assert worst < MAX_LAG, f"the loop was blocked for {worst * 1000:.1f} ms"
