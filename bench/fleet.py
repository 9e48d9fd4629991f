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

Then the operator itself (``--no-operator`` skips it): the same set in a YAML file, run
in-process as ``gitops run -f`` builds it (:class:`gitops.operator.runtime.Runtime`,
``--workers 4``, targets ``mock:fleet-cNN``, ``interval: 10s``), with the Git
transport's round trips counted (every ``ls-refs`` and every fetch, wrapped at
:class:`gitops.sources.git.transport.Remote`):

- start: the time until all 1,000 Applications are ``Synced`` at the first commit;
- a commit to one folder, then a push webhook: the time until all 1,000 report the new
  revision, how many wrote to their target (``SyncSucceeded``: exactly 20 must), and the
  round trips (budget: ``WEBHOOK_LS_REFS``);
- steady state: the round trips of one whole interval (every Application reconciled at
  least once; Deployments stay ``Progressing`` on ``mock:``, so more often), budget one
  ``ls-refs`` per freshness window (a tenth of the interval) plus three.

Budgets: start and webhook < 60 s each. Sharing the Applications' Git sources is what
these measure (docs/fleets.md, "At scale"): before it, each interval and each webhook
cost one ``ls-refs`` per Application.

Exits 1 when a budget is over or the count is wrong. Reproduce: ``make bench`` or
``.venv/bin/python bench/fleet.py [--folders N] [--targets M] [--interval 10s]
[--no-operator]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from gitops import Reconciler
from gitops.apps.spec import Application
from gitops.appsets.generate import generate
from gitops.appsets.generators.base import GeneratorContext
from gitops.appsets.sharing import FRESHNESS_SHARE, SharedSources
from gitops.appsets.spec import ApplicationSet
from gitops.cli import _parser
from gitops.operator.files import ApplicationFiles, TargetStatusStore
from gitops.operator.runtime import Runtime
from gitops.operator.status import AppStatus
from gitops.operator.webhooks import PushEvent, normalize_repository
from gitops.plugins import open_target
from gitops.sources.git.transport import Remote
from gitops.testing.gitserver import GitDaemon, WorkRepo

BUDGET_S = 10.0
OPERATOR_BUDGET_S = 60.0  # start, and webhook to every Application at the new revision
WEBHOOK_LS_REFS = 3  # the generator's, the Applications' (shared), one of slack


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


def appset_document(url: str, targets: int, target: str = "mock:", interval: str = "1m"
                    ) -> dict[str, Any]:
    return {
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
                         "target": {"url": target}, "interval": interval},
            },
        },
    }


def appset(url: str, targets: int) -> ApplicationSet:
    return ApplicationSet.model_validate(appset_document(url, targets))


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


class RoundTrips:
    """The Git transport's round trips in this process: ``ls-refs`` and fetches."""

    def __init__(self) -> None:
        self.ls_refs = 0
        self.fetches = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Count every :meth:`Remote.ls_refs` and :meth:`Remote.fetch` while inside."""
        ls_refs, fetch = Remote.ls_refs, Remote.fetch

        def counted_ls_refs(remote: Remote, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.ls_refs += 1
            return ls_refs(remote, *args, **kwargs)

        def counted_fetch(remote: Remote, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.fetches += 1
            return fetch(remote, *args, **kwargs)

        Remote.ls_refs = counted_ls_refs  # type: ignore[method-assign, assignment]
        Remote.fetch = counted_fetch  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            Remote.ls_refs, Remote.fetch = ls_refs, fetch  # type: ignore[method-assign]

    def take(self) -> tuple[int, int]:
        """(ls-refs, fetches) since the last take."""
        with self._lock:
            counts = (self.ls_refs, self.fetches)
            self.ls_refs = self.fetches = 0
        return counts


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def operator_phase(root: Path, work: WorkRepo, url: str, folders: int, targets: int,
                   interval: str) -> tuple[bool, list[str]]:
    """The fleet kept by the operator (``gitops run -f``); (within budgets, lines to print)."""
    total = folders * targets
    # one ls-refs per freshness window (1/10 of the interval), the generator's own, slack
    steady_budget = round(1 / FRESHNESS_SHARE) + 3
    os.environ["GITOPS_CACHE_DIR"] = os.fspath(root / "operator-cache")  # fetched afresh
    declared_file = root / "fleet.yaml"
    declared_file.write_text(yaml.safe_dump(
        appset_document(url, targets, "mock:fleet-{{cluster}}", interval)))
    args = _parser().parse_args(["run", "-f", os.fspath(declared_file), "--metrics-addr", "off",
                                 "--log-level", "warning"])
    store = TargetStatusStore()
    trips = RoundTrips()
    synced: set[str] = set()
    lock = threading.Lock()

    def on_status(app: Application, _status: AppStatus, reason: str) -> None:
        if reason == "SyncSucceeded":
            with lock:
                synced.add(app.key)

    lines: list[str] = []
    with trips.counting(), Runtime(args, store) as runtime:
        operator = runtime.operator
        operator.on_status(on_status)

        def all_at(commit: str) -> bool:
            keys = list(operator.applications())
            return len(keys) == total and all(
                (s := operator.status(k)) is not None and s.sync == "Synced"
                and s.last_applied_revision.endswith(commit) for k in keys)

        first = work.head()
        start = time.perf_counter()
        runtime.apply(ApplicationFiles(args.file).load_declarations())
        runtime.start()
        _wait(lambda: all_at(first), 600, "every Application Synced at the first commit")
        start_s = time.perf_counter() - start
        ls_refs, fetches = trips.take()
        lines.append(f"operator start: {total} Synced in {start_s:.2f} s; "
                     f"{ls_refs} ls-refs, {fetches} fetches")
        _wait(lambda: operator.idle, 60, "the operator idle")
        trips.take()
        with lock:
            synced.clear()

        changed = folders // 2
        work.write(folder_files(changed, version=3))
        work.commit(f"change app-{changed:02d} again")
        work.push(root / "served" / "fleet.git")
        second = work.head()
        start = time.perf_counter()
        triggered = runtime.push_received(PushEvent(
            "github", frozenset({normalize_repository(url)}), "refs/heads/main", "main", None,
            second))
        _wait(lambda: all_at(second), 600, "every Application at the new commit")
        webhook_s = time.perf_counter() - start
        _wait(lambda: operator.idle, 60, "the operator idle")
        webhook_trips = trips.take()
        with lock:
            wrote = len(synced)
        lines.append(f"operator webhook: {triggered} triggered; all {total} at the new revision "
                     f"in {webhook_s:.2f} s; {wrote} wrote to their target (expected {targets}); "
                     f"{webhook_trips[0]} ls-refs, {webhook_trips[1]} fetches")

        reconciles = [0]
        reconciled = runtime.metrics.reconciled

        def counted(app: str, result: Any, seconds: float) -> None:
            with lock:
                reconciles[0] += 1
            reconciled(app, result, seconds)

        setattr(runtime.metrics, "reconciled", counted)  # noqa: B010 (an instance's method)
        window = float(next(iter(operator.applications().values())).spec.interval)
        trips.take()
        time.sleep(window)  # the measurement: one whole interval of the fleet
        interval_trips = trips.take()
        lines.append(f"operator steady state, one interval ({interval}): {reconciles[0]} "
                     f"reconciles; {interval_trips[0]} ls-refs, {interval_trips[1]} fetches "
                     f"(budget {steady_budget})")
    store.close()
    ok = (start_s < OPERATOR_BUDGET_S and webhook_s < OPERATOR_BUDGET_S and wrote == targets
          and webhook_trips[0] <= WEBHOOK_LS_REFS and interval_trips[0] <= steady_budget)
    lines.append(f"operator budgets ({OPERATOR_BUDGET_S:.0f} s to start and to the webhook's "
                 f"revision, <= {WEBHOOK_LS_REFS} ls-refs per webhook, {targets} writes): "
                 f"{'OK' if ok else 'OVER'}")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--interval", default="10s",
                        help="the generated Applications' interval, and the steady-state "
                             "window of the operator phase (default 10s)")
    parser.add_argument("--no-operator", dest="operator", action="store_false",
                        help="skip the operator phase (gitops run -f)")
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
            ok_operator, operator_lines = (
                operator_phase(root, work, url, args.folders, args.targets, args.interval)
                if args.operator
                else (True, []))
    ok_count = len(generated.applications) == total and planned == total and replanned == args.targets
    ok_cold, ok_replan = cold_s < BUDGET_S, replan_s < BUDGET_S
    print(f"applications generated: {len(generated.applications)} in {generated_s:.2f} s")
    print(f"generate + plan all:    {cold_s:.2f} s for {planned} plans "
          f"(budget {BUDGET_S:.0f} s) {'OK' if ok_cold else 'OVER'}")
    print(f"after a commit to one folder: re-planned {replanned} of {len(again.applications)} "
          f"(expected {args.targets}) in {replan_s:.2f} s {'OK' if ok_replan and ok_count else 'OVER'}")
    for line in operator_lines:
        print(line)
    return 0 if ok_count and ok_cold and ok_replan and ok_operator else 1


if __name__ == "__main__":
    sys.exit(main())
