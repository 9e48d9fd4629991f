"""Benchmark: cold plan() of 10,000 Deployment-sized manifests against a file-tree target.

The source holds 10,000 Deployments in 1,000 files; the target (a file tree) holds all of
them, 1% drifted by hand. Parsing both trees with PyYAML's C loader is the floor no
plan can beat; the budget is a cold plan within 1.25x of it. The naive baseline answers the
same question as the plan: it parses the same trees, strips the fields a server owns from
the live side, and runs ``jsonpatch.make_patch`` on every pair; it must find exactly the
drifted objects. Every "cold" run starts from new objects and cleared module-level caches.
Exits 1 when the budget is over.

Reproduce: ``make bench`` or ``.venv/bin/python bench/plan_10k.py [--objects N]``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from gitops import Reconciler
from gitops.inventory import from_resources
from gitops.manifests import gc_paused
from gitops.model import Resource
from gitops.sources.directory import DirectorySource
from gitops.targets.filetree import FileTreeTarget

LOADER = yaml.CSafeLoader
BUDGET = 1.25


class PlainDumper(yaml.CSafeDumper):
    """Writes shared sub-dicts out in full, as Helm and kustomize output does (no anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def deployment(i: int) -> dict[str, Any]:
    name = f"svc-{i:05d}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": f"team-{i % 20}",
              "tier": "backend"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": f"ns-{i % 50}", "labels": labels,
                     "annotations": {"owner": f"team-{i % 20}@example.com"}},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [{
                        "name": "app",
                        "image": f"registry.example.com/{name}:1.{i % 7}.0",
                        "args": ["--port=8080", "--log-level=info"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "SERVICE", "value": name},
                                {"name": "REGION", "value": "eu-west-1"},
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
                                    "name": f"{name}-db", "key": "password"}}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"},
                                           "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"},
                                          "initialDelaySeconds": 10},
                    }],
                },
            },
        },
    }


def build(root: Path, objects: int, per_file: int, drift_every: int) -> tuple[Path, Path, int]:
    src, out = root / "src", root / "out"
    src.mkdir()
    manifests = [deployment(i) for i in range(objects)]
    for f in range(0, objects, per_file):
        (src / f"apps-{f // per_file:04d}.yaml").write_text(
            yaml.dump_all(manifests[f:f + per_file], Dumper=PlainDumper, sort_keys=False))
    target = FileTreeTarget(out)
    resources = [Resource.from_manifest(m) for m in manifests]
    for res in resources:
        live = copy.deepcopy(res.manifest)
        live["metadata"].update(uid=f"uid-{res.name}", resourceVersion="1", generation=1)
        live["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
        if int(res.name[4:]) % drift_every == 0:
            live["spec"]["replicas"] = 3
        target.apply(Resource.from_manifest(live))
    target.write_inventory("default", from_resources(resources))
    return src, out, len(resources) // drift_every


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def parse_trees(src: Path, out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    desired = [d for p in sorted(src.glob("*.yaml"))
               for d in yaml.load_all(p.read_bytes(), Loader=LOADER)]
    live = [yaml.load(p.read_bytes(), Loader=LOADER)
            for p in sorted(out.rglob("*.yaml")) if ".gitops" not in p.parts]
    return desired, live


SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def without_server_fields(live: dict[str, Any]) -> dict[str, Any]:
    """``live`` as the source would write it: no status, no server-owned metadata."""
    stripped = {k: v for k, v in live.items() if k != "status"}
    stripped["metadata"] = {
        k: v for k, v in live["metadata"].items() if k not in SERVER_METADATA
    }
    return stripped


def naive(src: Path, out: Path) -> int:
    desired, live = parse_trees(src, out)
    by_name = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in live}
    changed = 0
    for m in desired:
        have = without_server_fields(by_name[(m["metadata"]["namespace"], m["metadata"]["name"])])
        if jsonpatch.make_patch(have, m):
            changed += 1
    return changed


def clear_module_caches() -> None:
    """Forget every module-level cache of gitops, so a "cold" run is cold."""
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith("gitops"):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()
    gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gitops-bench-") as tmp:
        src, out, drifted = build(Path(tmp), args.objects, args.per_file, 100)
        files = len(list(src.glob("*.yaml")))

        parse_gc_s, _ = best_of(args.runs, lambda: parse_trees(src, out))

        def parse_paused() -> object:
            with gc_paused():
                return parse_trees(src, out)

        # The floor is the faster of the two: plan() pauses the collector, so the
        # bare parse gets the same advantage.
        parse_s, _ = best_of(args.runs, parse_paused)
        parse_s = min(parse_s, parse_gc_s)

        def cold_plan() -> Any:
            clear_module_caches()
            return Reconciler(DirectorySource(src), FileTreeTarget(out), name="default").plan()

        plan_s, plan = best_of(args.runs, cold_plan)
        naive_s, naive_changed = best_of(args.runs, lambda: naive(src, out))
        updates = len(plan.changes)  # type: ignore[attr-defined]
        assert updates == drifted, f"plan found {updates} changes, expected {drifted}"
        assert naive_changed == drifted, f"naive found {naive_changed}, expected {drifted}"

        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ratio = plan_s / parse_s
        print(f"objects: {args.objects} in {files} files, drifted: {drifted} "
              f"(plan found {updates}, naive found {naive_changed})")
        print(f"C-loader parse of source + target trees: {parse_gc_s:8.3f} s   (GC on)")
        print(f"  the same with the cyclic GC paused:    {parse_s:8.3f} s   (the floor)")
        print(f"gitops cold plan():                      {plan_s:8.3f} s   "
              f"ratio {ratio:.3f}x (budget {BUDGET}x) {'OK' if ratio <= BUDGET else 'OVER'}")
        print(f"naive parse + jsonpatch.make_patch:      {naive_s:8.3f} s   "
              f"ratio {naive_s / parse_s:.3f}x")
        print(f"peak RSS: {rss_mib:.0f} MiB   (best of {args.runs} runs each; "
              f"python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
        print(f"reproduce: .venv/bin/python bench/plan_10k.py --objects {args.objects} "
              f"--per-file {args.per_file} --runs {args.runs}")
    return 0 if ratio <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
