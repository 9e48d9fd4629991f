"""Benchmark: API requests the Kubernetes target makes, counted by the API emulator.

1,000 objects across 10 kinds (Namespaces, ClusterRoles and eight namespaced kinds in four
namespaces: 34 kind-and-namespace scopes). Phases, each counted on its own:

* cold plan on an empty cluster, then the first sync (creates everything);
* cold plan by a new process once everything exists (budget: one LIST per kind and
  namespace scope, plus discovery, plus the inventory's GET);
* a no-op reconcile (plan + sync) with a warm watch cache (budget: zero reads);
* a sync with 10 changed objects, warm (budget: at most 10 writes, plus the dry-run
  validation of the same 10 and the inventory's new revision).

Beside them, what a kubectl-style reconcile (GET + apply PATCH per object) and a
Flux-style one (GET + dry-run PATCH per object to diff, PATCH per changed object) need.

Reproduce: ``.venv/bin/python bench/k8s_requests.py [--objects N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from gitops import Reconciler
from gitops.targets.kubernetes import KubernetesTarget
from gitops.testing.kube import KubeEmulator

NAMESPACES = 4
NAMESPACED_KINDS = 8
READS = ("get", "list", "watch", "discovery")
WRITES = ("create", "update", "patch", "delete")


def manifests(total: int) -> list[dict[str, Any]]:
    """``total`` objects: 4 Namespaces, ClusterRoles, and 8 namespaced kinds spread evenly."""
    namespaces = [f"bench-{n}" for n in range(NAMESPACES)]
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    per_kind = (total - NAMESPACES) // (NAMESPACED_KINDS + 1)
    per_scope = per_kind // NAMESPACES
    namespaced = per_scope * NAMESPACES * NAMESPACED_KINDS
    roles = total - NAMESPACES - namespaced
    rule = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    out += [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": f"bench-role-{i:04d}"}, "rules": rule} for i in range(roles)]
    for ns in namespaces:
        for i in range(per_scope):
            name = f"obj-{i:04d}"
            meta = {"name": name, "namespace": ns, "labels": {"app": name}}
            out += [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                 "data": {"index": str(i)}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                 "stringData": {"token": f"not-a-secret-{i}"}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
                {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                 "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
                    "replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {
                        "containers": [{"name": "app", "image": "nginx:1.27"}]}}}},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                 "rules": rule},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                               "kind": "Role", "name": name},
                 "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": meta, "spec": {"podSelector": {"matchLabels": {"app": name}}}},
            ]
    return out


def write_source(root: Path, objects: list[dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for start in range(0, len(objects), 100):
        with open(root / f"objects-{start // 100:03d}.yaml", "w") as handle:
            yaml.safe_dump_all(objects[start:start + 100], handle)


class Meter:
    """Counts one phase's requests on the emulator (dry runs apart) and its wall time."""

    def __init__(self, emulator: KubeEmulator) -> None:
        self.emulator = emulator
        self.rows: list[tuple[str, Counter[str], float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.emulator.reset_counts()
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        counts = Counter(self.emulator.counts())
        dry = sum(1 for method, _, query in self.emulator.requests
                  if method == "PATCH" and "dryRun=All" in query)
        counts["patch"] -= dry
        counts["dry-run"] = dry
        self.rows.append((name, +counts, elapsed))


def run(total: int) -> int:
    objects = manifests(total)
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    scopes = {(o["kind"], o["metadata"].get("namespace", "")) for o in objects}
    print(f"{len(objects)} objects, {len(kinds)} kinds, {len(scopes)} kind-and-namespace scopes\n")
    with KubeEmulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        write_source(source, objects)
        kubeconfig = str(emulator.kubeconfig_path)
        meter = Meter(emulator)

        def reconciler(**target_options: Any) -> Reconciler:
            target = KubernetesTarget("k8s:", kubeconfig=kubeconfig, **target_options)
            return Reconciler(str(source), target, name="bench", prune=True)

        with reconciler() as rec:
            with meter.phase("cold plan, empty cluster"):
                plan = rec.plan()
            with meter.phase(f"first sync ({len(plan.changes)} creates)"):
                assert rec.sync(plan).succeeded
        with reconciler() as rec, meter.phase("cold plan, new process"):
            assert rec.plan().in_sync
        with reconciler(watch=True) as rec:
            rec.sync()  # warms the cache: one LIST and one WATCH per kind
            time.sleep(0.5)
            with meter.phase("no-op reconcile, warm watch cache"):
                result = rec.sync()
                assert result.succeeded and not result.results
            changed = [o for o in objects if o["kind"] == "ConfigMap"][:10]
            for obj in changed:
                obj["data"] = {"index": "changed"}
            write_source(source, objects)
            with meter.phase("sync of 10 changed objects, warm"):
                result = rec.sync()
                assert result.succeeded and len(result.results) == 10, result.results
        report(meter.rows, len(objects), len(scopes))
    return 0


def report(rows: list[tuple[str, Counter[str], float]], objects: int, scopes: int) -> None:
    def total(counts: Counter[str], verbs: tuple[str, ...]) -> int:
        return sum(counts.get(v, 0) for v in verbs)

    print(f"{'phase':<38} {'discovery':>9} {'get':>5} {'list':>5} {'watch':>5} "
          f"{'dry-run':>7} {'writes':>6} {'seconds':>8}")
    for name, counts, seconds in rows:
        print(f"{name:<38} {counts.get('discovery', 0):>9} {counts.get('get', 0):>5} "
              f"{counts.get('list', 0):>5} {counts.get('watch', 0):>5} "
              f"{counts.get('dry-run', 0):>7} {total(counts, WRITES):>6} {seconds:>8.2f}")
    print(f"\nFor a reconcile of {objects} objects ({scopes} kind-and-namespace scopes):")
    print(f"  kubectl-style (GET + PATCH per object):              {2 * objects:>5} requests")
    print(f"  Flux-style (GET + dry-run PATCH per object to diff): {2 * objects:>5} requests, "
          f"+10 PATCH for 10 changes")
    cold = next(c for n, c, _ in rows if n.startswith("cold plan, new"))
    noop = next(c for n, c, _ in rows if n.startswith("no-op"))
    ten = next(c for n, c, _ in rows if n.startswith("sync of 10"))
    checks: list[tuple[str, Callable[[], bool]]] = [
        (f"cold plan lists at most once per scope ({cold.get('list', 0)} <= {scopes})",
         lambda: cold.get("list", 0) <= scopes and cold.get("get", 0) <= 1),
        (f"warm no-op reconcile reads nothing ({total(noop, READS)} reads)",
         lambda: total(noop, READS) == 0 and total(noop, WRITES) == 0),
        (f"10 changes: 10 writes + 1 inventory update ({total(ten, WRITES)} writes, "
         f"{ten.get('dry-run', 0)} dry runs, {total(ten, READS)} reads)",
         lambda: total(ten, WRITES) <= 11 and total(ten, READS) == 0),
    ]
    print()
    for text, check in checks:
        print(("ok    " if check() else "OVER  ") + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    args = parser.parse_args(argv)
    return run(args.objects)


if __name__ == "__main__":
    sys.exit(main())
