"""Benchmark: the differ alone on 10,000 Deployment pairs, by drift policy (keyed lists on or off).

The cold-plan budget (bench/plan_10k.py) is measured on a file-tree target, whose policy
is exact: lists compare by position there, and list types are never consulted. This
measures what keyed lists cost where they are on (subset and managed modes, the
Kubernetes target's policy): the same desired objects compared under each policy with
live objects as a server returns them (defaults, status, managedFields of a server-side
apply), or, in exact mode, as a file tree stores them; 1% drifted. Setup is not timed.

Reproduce: ``PYTHONPATH=$PWD python bench/diff_keyed.py [--objects N]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from plan_10k import deployment

from gitops.differs.lists import builtin_list_types
from gitops.differs.structural import StructuralDiffer
from gitops.manifests import gc_paused
from gitops.model import DriftMode, DriftPolicy, Resource
from gitops.testing.kube import apply as ssa
from gitops.testing.kube.defaults import apply_defaults

NOW = "2024-05-01T10:00:00Z"


def served(manifest: dict[str, Any], drift: bool) -> dict[str, Any]:
    live = ssa.apply(None, copy.deepcopy(manifest), manager="gitops", force=True,
                     api_version="apps/v1", now=NOW, has_status=True)
    live["apiVersion"], live["kind"] = manifest["apiVersion"], manifest["kind"]
    apply_defaults("apps", "Deployment", live, False)
    live["metadata"].update(uid="u", resourceVersion="1", generation=1, creationTimestamp=NOW)
    live["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    if drift:
        live["spec"]["replicas"] = 3
    return live


def stored(manifest: dict[str, Any], drift: bool) -> dict[str, Any]:
    """What a file-tree target holds: what was applied, plus server-owned fields."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="u", resourceVersion="1", generation=1)
    live["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    if drift:
        live["spec"]["replicas"] = 3
    return live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    desired = [Resource.from_manifest(deployment(i)) for i in range(args.objects)]
    live = [Resource.from_manifest(served(r.manifest, i % 100 == 0))
            for i, r in enumerate(desired)]
    files = [Resource.from_manifest(stored(r.manifest, i % 100 == 0))
             for i, r in enumerate(desired)]
    table = builtin_list_types()
    policies = {
        "exact (dir:, mock:)": DriftPolicy(DriftMode.EXACT),
        "exact, list types given": DriftPolicy(DriftMode.EXACT, list_types=table),
        "subset, by position": DriftPolicy(),
        "subset, keyed lists": DriftPolicy(list_types=table),
        "managed, by position": DriftPolicy(DriftMode.MANAGED, field_manager="gitops"),
        "managed, keyed lists (k8s:)": DriftPolicy(DriftMode.MANAGED, field_manager="gitops",
                                                   list_types=table),
    }
    differ = StructuralDiffer()
    best = dict.fromkeys(policies, float("inf"))
    changed = dict.fromkeys(policies, 0)
    for _ in range(args.runs):  # interleaved, so that a busy machine slows every policy alike
        for name, policy in policies.items():
            pairs = zip(desired, files if policy.mode is DriftMode.EXACT else live, strict=True)
            start = time.perf_counter()
            with gc_paused():
                changed[name] = sum(differ.diff(d, w, policy).changed for d, w in pairs)
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"{args.objects} Deployment pairs, 1% drifted; best of {args.runs} runs")
    for name in policies:
        print(f"  {name:30s} {best[name]:7.3f} s  {best[name] / args.objects * 1e6:6.1f} "
              f"us/pair  changed: {changed[name]}")


if __name__ == "__main__":
    main()
