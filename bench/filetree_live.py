"""Benchmark: FileTreeTarget.live() of 10,000 unchanged Deployments (the no-op sync's read).

A target folder holds 10,000 Deployments (one file each, 50 namespaces) written by the
target itself. A fresh target reads them all once (cold: read and parse every file);
later calls on the same target find every file unchanged through the stat cache and
return the same objects. The floor is one ``lstat`` per file (relative to an open folder,
as the target does it); the budget is a warm ``live()`` within 0.075 s (half the 0.15 s
no-op sync budget of issue 8; best of the runs, since other load only adds), and every
warm result must be the very object of the cold one. Also times ``read_inventory`` and
``owners`` over the 10,000-key inventory, warm.

Reproduce: ``.venv/bin/python bench/filetree_live.py [--objects N] [--repeat R]``;
exits 1 when a budget is over.
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
from typing import Any

from gitops.inventory import from_resources
from gitops.model import Resource
from gitops.targets.filetree import FileTreeTarget, path_for_key, statcache

WARM_BUDGET = 0.075  # seconds for live() of 10,000 unchanged files


def deployment(i: int) -> dict[str, Any]:
    name = f"svc-{i:05d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": f"ns-{i % 50}", "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example.com/{name}:1.0.{i}",
                            "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ]
                },
            },
        },
    }


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    budget = WARM_BUDGET * args.objects / 10_000

    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        root = Path(tmp) / "live"
        writer = FileTreeTarget(root)
        resources = [Resource.from_manifest(deployment(i)) for i in range(args.objects)]
        for resource in resources:
            writer.apply(resource)
        writer.write_inventory("bench", from_resources(resources, revision="r1"))
        time.sleep(statcache.FINE_WINDOW_NS / 1e9 + 0.1)  # files are old enough to trust
        keys = [r.key for r in resources]

        target = FileTreeTarget(root)
        start = time.perf_counter()
        cold = target.live(keys)
        cold_time = time.perf_counter() - start
        assert len(cold) == args.objects

        warm_time, warm_median = timed(lambda: target.live(keys), args.repeat)
        warm = target.live(keys)
        same = all(warm[k] is cold[k] for k in keys)

        files = [path_for_key(k).rpartition("/") for k in keys]
        folders = {f: os.open(root / f, os.O_RDONLY | os.O_DIRECTORY) for f, _, _ in files}

        def stat_floor() -> None:
            for folder, _, name in files:
                os.stat(name, dir_fd=folders[folder], follow_symlinks=False)

        floor_time, _ = timed(stat_floor, args.repeat)
        for fd in folders.values():
            os.close(fd)
        target.read_inventory("bench")
        inventory_time, _ = timed(lambda: target.read_inventory("bench"), args.repeat)
        owners_time, _ = timed(lambda: target.owners(keys, "other"), args.repeat)

    print(f"objects:                 {args.objects}")
    print(f"cold live():             {cold_time:.3f} s (read and parse every file)")
    print(f"warm live():             {warm_time:.4f} s best, {warm_median:.4f} s median "
          f"of {args.repeat}")
    print(f"lstat floor:             {floor_time:.4f} s best ({warm_time / floor_time:.1f}x)")
    print(f"warm read_inventory():   {inventory_time * 1000:.2f} ms")
    print(f"warm owners():           {owners_time * 1000:.1f} ms")
    print(f"same objects when warm:  {same}")
    ok = same and warm_time <= budget
    print(f"budget: warm live() <= {budget:.3f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
