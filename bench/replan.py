"""Benchmark: a long-running Reconciler re-plans what changed, not the whole tree (issue 8).

10,000 Deployments in 1,000 files, a ``dir:`` target holding all of them, one process and
one ``Reconciler`` (as ``run()`` uses it):

- a cold plan (new Reconciler, module caches cleared) for reference;
- a no-op ``sync()`` (nothing changed anywhere): budget < 0.15 s;
- a re-plan after a commit that changes one file (10 objects): budget < 0.3 s and <= 5% of
  the cold plan, comparing exactly the 10 changed objects (``Plan.diffed``);
- drift made by hand in one live file is still found by the next plan.

Exits 1 when any budget is over. Reproduce: ``make bench`` or
``.venv/bin/python bench/replan.py [--objects N] [--per-file K] [--runs R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from plan_10k import PlainDumper, clear_module_caches, deployment

from gitops import Reconciler
from gitops.sources.directory import DirectorySource
from gitops.targets.filetree import FileTreeTarget

NOOP_BUDGET_S = 0.15
REPLAN_BUDGET_S = 0.3
REPLAN_BUDGET_RATIO = 0.05

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def write_file(src: Path, index: int, per_file: int, image_tag: str = "") -> None:
    manifests = [deployment(i) for i in range(index * per_file, (index + 1) * per_file)]
    if image_tag:
        for m in manifests:
            m["spec"]["template"]["spec"]["containers"][0]["image"] += image_tag
    (src / f"apps-{index:04d}.yaml").write_text(
        yaml.dump_all(manifests, Dumper=PlainDumper, sort_keys=False))


def verdict(ok: bool) -> str:
    return "OK" if ok else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    files = args.objects // args.per_file

    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for f in range(files):
            write_file(src, f, args.per_file)

        def reconciler() -> Reconciler:
            return Reconciler(DirectorySource(src), FileTreeTarget(out), name="bench", prune=True)

        first = reconciler().sync()
        assert first.succeeded and len(first.results) == args.objects

        clear_module_caches()
        cold_s, cold = timed(reconciler().plan)
        assert cold.in_sync, "the target holds the source"

        rec = reconciler()
        rec.plan()  # the long-running reconciler's first plan
        noop_times = []
        for _ in range(args.runs):
            noop_s, result = timed(rec.sync)
            assert result.succeeded and not result.results
            noop_times.append(noop_s)
        noop_s = statistics.median(noop_times)

        replan_times = []
        diffed = changes = 0
        for run in range(args.runs):
            write_file(src, files // 2, args.per_file, image_tag=f"-r{run}")  # one commit
            replan_s, plan = timed(rec.plan)
            replan_times.append(replan_s)
            diffed, changes = plan.diffed, len(plan.changes)
            assert rec.sync(plan).succeeded
        replan_s = statistics.median(replan_times)
        exactly = diffed == args.per_file and changes == args.per_file

        hand_edited = out / "ns-7" / "Deployment.apps" / "svc-00007.yaml"
        text = hand_edited.read_text()
        hand_edited.write_text(text.replace("replicas: 2", "replicas: 9", 1))
        drift = rec.plan()
        drift_found = [str(c.key) for c in drift.changes] == ["Deployment.apps/ns-7/svc-00007"]

    ratio = replan_s / cold_s
    noop_ok = noop_s < NOOP_BUDGET_S
    replan_ok = replan_s < REPLAN_BUDGET_S and ratio <= REPLAN_BUDGET_RATIO and exactly
    print(f"objects: {args.objects} in {files} files, dir: target, one Reconciler "
          f"(median of {args.runs} runs; python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"cold plan():                         {cold_s:8.3f} s   (reference)")
    print(f"no-op sync():                        {noop_s:8.3f} s   budget < {NOOP_BUDGET_S} s "
          f"{verdict(noop_ok)}")
    print(f"re-plan after a one-file commit:     {replan_s:8.3f} s   {ratio:.1%} of cold; "
          f"budget < {REPLAN_BUDGET_S} s and <= {REPLAN_BUDGET_RATIO:.0%} "
          f"{verdict(replan_ok)}")
    print(f"  objects compared afresh: {diffed}, changes: {changes} "
          f"(expected {args.per_file} and {args.per_file}) {verdict(exactly)}")
    print(f"hand-made drift in one live file found by the next plan: "
          f"{'yes' if drift_found else 'NO'}")
    print(f"reproduce: .venv/bin/python bench/replan.py --objects {args.objects} "
          f"--per-file {args.per_file} --runs {args.runs}")
    return 0 if noop_ok and replan_ok and drift_found else 1


if __name__ == "__main__":
    sys.exit(main())
