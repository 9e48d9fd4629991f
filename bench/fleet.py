"""Benchmark: an ApplicationSet of 1,000 Applications, generated and planned (issue 12).

A Git repository on a real ``git daemon`` holds 50 folders ``apps/app-NN`` (a ConfigMap
and a Deployment each). One ApplicationSet, a ``matrix`` of the ``git`` directories
generator (``apps/*``) and a ``list`` of 20 targets (``mock:`` each), generates 50 x 20
= 1,000 Applications. Each is planned with the engine (``gitops.Reconciler(...).plan()``)
through :class:`gitops.appsets.sharing.SharedSources`: one ``ls-refs`` and one fetch of the
repository per round, each Application a view of its folder.

- generate + plan all 1,000 from cold: budget < 10 s;
- a commit changing one folder: the set is evaluated again, each Application's folder
  digest compared with the one it was last planned at, and only the changed ones
  re-planned: exactly 20 must be (printed), within the same budget.

Exits 1 when a budget is over or the count is wrong. Reproduce: ``make bench`` or
``.venv/bin/python bench/fleet.py [--folders N] [--targets M]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gitops import Reconciler
from gitops.apps.spec import Application
from gitops.appsets.generate import generate
from gitops.appsets.generators.base import GeneratorContext
from gitops.appsets.sharing import SharedSources
from gitops.appsets.spec import ApplicationSet
from gitops.plugins import open_target
from gitops.testing.gitserver import GitDaemon, WorkRepo

BUDGET_S = 10.0


def folder_files(index: int, version: int = 1) -> dict[str, str]:
    name = f"app-{index:02d}"
    return {
        f"apps/{name}/config.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n"
            f"data: {{version: '{version}'}}\n"),
        f"apps/{name}/deployment.yaml": (
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{containers: [{{name: app, image: 'registry.example/{name}:v{version}'}}]}}\n"),
    }


def appset(url: str, targets: int) -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "bench"},
        "spec": {
            "generators": [{"matrix": {"generators": [
                {"git": {"url": f"{url}@main", "directories": [{"path": "apps/*"}]}},
                {"list": {"elements": [{"cluster": f"c{i:02d}"} for i in range(targets)]}},
            ]}}],
            "template": {
                "metadata": {"name": "{{path.basename}}-{{cluster}}", "labels": {"cluster": "{{cluster}}"}},
                "spec": {"source": {"url": f"{url}@main#path={{{{path}}}}"},
                         "target": {"url": "mock:"}},
            },
        },
    })


class Fleet:
    """The generated Applications' reconcilers, and the folder digest each was planned at."""

    def __init__(self) -> None:
        self.sources = SharedSources()
        self.reconcilers: dict[str, Reconciler] = {}
        self.planned_at: dict[str, str | None] = {}

    def plan(self, apps: tuple[Application, ...]) -> int:
        """Plan every Application whose folder changed since its last plan; how many were."""
        planned = 0
        for app in apps:
            reconciler = self.reconcilers.get(app.key)
            if reconciler is None:
                reconciler = Reconciler(self.sources.source_for(app), open_target(app.spec.target.url),
                                        **app.reconciler_kwargs())
                self.reconcilers[app.key] = reconciler
            source = reconciler.source
            digest = self.sources.folder_digest(source, source.resolve())
            if digest is not None and self.planned_at.get(app.key) == digest:
                continue
            plan = reconciler.plan()
            assert len(plan.changes) == 2, (app.key, plan.changes)
            self.planned_at[app.key] = digest
            planned += 1
        return planned

    def close(self) -> None:
        for reconciler in self.reconcilers.values():
            reconciler.target.close()
        self.sources.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--targets", type=int, default=20)
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("git is not installed", file=sys.stderr)
        return 1
    total = args.folders * args.targets
    with tempfile.TemporaryDirectory(prefix="gitops-bench-fleet-") as tmp:
        root = Path(tmp)
        os.environ["GITOPS_CACHE_DIR"] = os.fspath(root / "cache")
        work = WorkRepo(root / "work", home=root)
        files: dict[str, Any] = {}
        for index in range(args.folders):
            files.update(folder_files(index))
        work.write(files)
        work.commit("fleet")
        served = root / "served"
        served.mkdir()
        work.push(served / "fleet.git")
        with GitDaemon(served).start() as daemon:
            url = daemon.url("fleet.git")
            context = GeneratorContext()
            fleet = Fleet()
            try:
                start = time.perf_counter()
                generated = generate(appset(url, args.targets), context=context)
                generated_s = time.perf_counter() - start
                planned = fleet.plan(generated.applications)
                cold_s = time.perf_counter() - start

                changed = args.folders // 2
                work.write(folder_files(changed, version=2))
                work.commit(f"change app-{changed:02d}")
                work.push(served / "fleet.git")
                start = time.perf_counter()
                fleet.sources.refresh()
                again = generate(appset(url, args.targets), context=context)
                replanned = fleet.plan(again.applications)
                replan_s = time.perf_counter() - start
            finally:
                fleet.close()
                context.cache.close()
    ok_count = len(generated.applications) == total and planned == total and replanned == args.targets
    ok_cold, ok_replan = cold_s < BUDGET_S, replan_s < BUDGET_S
    print(f"applications generated: {len(generated.applications)} in {generated_s:.2f} s")
    print(f"generate + plan all:    {cold_s:.2f} s for {planned} plans "
          f"(budget {BUDGET_S:.0f} s) {'OK' if ok_cold else 'OVER'}")
    print(f"after a commit to one folder: re-planned {replanned} of {len(again.applications)} "
          f"(expected {args.targets}) in {replan_s:.2f} s {'OK' if ok_replan and ok_count else 'OVER'}")
    return 0 if ok_count and ok_cold and ok_replan else 1


if __name__ == "__main__":
    sys.exit(main())
