"""bench/k8s_requests.py measures through its proxy and fails when a budget is over."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("gitops.testing.kube")

BENCH = Path(__file__).resolve().parent.parent / "bench" / "k8s_requests.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_requests", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["k8s_requests"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/api/v1", "discovery"),
        ("GET", "/apis/apps/v1", "discovery"),
        ("GET", "/openapi/v3/api/v1", "discovery"),
        ("GET", "/api/v1/namespaces", "list"),
        ("GET", "/api/v1/namespaces/app", "get"),
        ("GET", "/api/v1/namespaces/app/configmaps?labelSelector=a%3Db", "list"),
        ("GET", "/api/v1/namespaces/app/configmaps/cm", "get"),
        ("GET", "/apis/apps/v1/deployments?watch=true", "watch"),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d?dryRun=All", "dry-run"),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d", "patch"),
        ("POST", "/api/v1/namespaces/a/configmaps", "create"),
        ("PUT", "/api/v1/namespaces/a/configmaps/c", "update"),
        ("DELETE", "/api/v1/namespaces/a", "delete"),
    ],
)
def test_requests_are_classified_as_the_budgets_count_them(
    bench: ModuleType, method: str, path: str, verb: str
) -> None:
    assert bench.classify(method, path) == verb


def test_a_budget_over_exits_non_zero(bench: ModuleType) -> None:
    meter = bench.Meter(proxy=None)
    within = [("k8s: cold plan, new process", Counter(list=34, get=1, discovery=5)),
              ("k8s: no-op reconcile", Counter()),
              ("k8s: sync of 10 changed, warm", Counter({"patch": 10, "update": 1})),
              ("k8s: sync of 10 changed, cold", Counter({"list": 34, "patch": 10}))]
    meter.rows = [(name, counts, 0.0) for name, counts in within]
    assert bench.check(meter, scopes=34, changed=10) == 0
    meter.rows[1] = ("k8s: no-op reconcile", Counter(list=1), 0.0)  # one read too many
    assert bench.check(meter, scopes=34, changed=10) == 1


def test_the_bench_runs_every_client_through_the_proxy(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--objects", "60"] + ([] if shutil.which("kubectl") else ["--no-kubectl"])
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "Flux-style: reconcile" in out and "OVER" not in out
    if shutil.which("kubectl"):
        row = next(line for line in out.splitlines() if line.startswith("kubectl-style"))
        assert int(row.split()[-2]) > 0  # kubectl's own requests were counted
