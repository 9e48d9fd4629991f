"""The operator's Prometheus metrics, scraped over HTTP and parsed as Prometheus would."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gitops.operator.httpserver import Server, operator_routes, serve
from gitops.operator.metrics import DURATION_BUCKETS, OperatorMetrics

SHOP, WEB = "gitops/shop", "team/web"


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics()


@pytest.fixture
def endpoint(metrics: OperatorMetrics) -> Iterator[Server]:
    with serve("127.0.0.1:0", operator_routes(metrics, lambda: True), name="metrics") as server:
        yield server


def scrape(server: Server) -> dict[str, tuple[str, list[Sample]]]:
    """Family name -> (type, samples), from a real HTTP scrape."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = response.read().decode()
    return {family.name: (family.type, list(family.samples))
            for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_reconciles_are_counted_by_app_and_result(metrics: OperatorMetrics,
                                                   endpoint: Server) -> None:
    metrics.reconciled(SHOP, "success", 0.02)
    metrics.reconciled(SHOP, "success", 0.3)
    metrics.reconciled(SHOP, "error", 1.5)
    metrics.reconciled(WEB, "success", 0.004)
    families = scrape(endpoint)
    kind, samples = families["gitops_reconcile"]
    assert kind == "counter"
    assert value(samples, "gitops_reconcile_total", app=SHOP, result="success") == 2
    assert value(samples, "gitops_reconcile_total", app=SHOP, result="error") == 1
    assert value(samples, "gitops_reconcile_total", app=WEB, result="success") == 1
    assert not [s for s in samples if s.labels == {"app": WEB, "result": "error"}]


def test_reconcile_durations_are_a_histogram_by_app_from_10ms_to_5min(
        metrics: OperatorMetrics, endpoint: Server) -> None:
    metrics.reconciled(SHOP, "success", 0.02)
    metrics.reconciled(SHOP, "error", 400.0)
    metrics.reconciled(WEB, "success", 0.004)
    kind, samples = scrape(endpoint)["gitops_reconcile_duration_seconds"]
    assert kind == "histogram"
    buckets = sorted(float(s.labels["le"]) for s in samples
                     if s.name.endswith("_bucket") and s.labels["app"] == SHOP)
    assert buckets[0] == 0.01 and buckets[-2] == 300.0 and buckets[-1] == float("inf")
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert value(samples, "gitops_reconcile_duration_seconds_count", app=SHOP) == 2
    assert value(samples, "gitops_reconcile_duration_seconds_sum", app=SHOP) == pytest.approx(400.02)
    assert value(samples, "gitops_reconcile_duration_seconds_bucket", app=SHOP, le="0.025") == 1
    assert value(samples, "gitops_reconcile_duration_seconds_bucket", app=SHOP, le="300.0") == 1
    assert value(samples, "gitops_reconcile_duration_seconds_bucket", app=SHOP, le="+Inf") == 2
    assert value(samples, "gitops_reconcile_duration_seconds_bucket", app=WEB, le="0.01") == 1


def test_app_state_sets_the_sync_health_and_resource_gauges(metrics: OperatorMetrics,
                                                            endpoint: Server) -> None:
    metrics.app_state(SHOP, out_of_sync=True, healthy=False, resources=12)
    metrics.app_state(WEB, out_of_sync=False, healthy=True, resources=3)
    families = scrape(endpoint)
    for name in ("gitops_app_out_of_sync", "gitops_app_healthy", "gitops_resources"):
        assert families[name][0] == "gauge"
    assert value(families["gitops_app_out_of_sync"][1], "gitops_app_out_of_sync", app=SHOP) == 1
    assert value(families["gitops_app_healthy"][1], "gitops_app_healthy", app=SHOP) == 0
    assert value(families["gitops_resources"][1], "gitops_resources", app=SHOP) == 12
    assert value(families["gitops_app_out_of_sync"][1], "gitops_app_out_of_sync", app=WEB) == 0
    assert value(families["gitops_app_healthy"][1], "gitops_app_healthy", app=WEB) == 1
    metrics.app_state(SHOP, out_of_sync=False, healthy=True, resources=11)
    families = scrape(endpoint)
    assert value(families["gitops_app_out_of_sync"][1], "gitops_app_out_of_sync", app=SHOP) == 0
    assert value(families["gitops_resources"][1], "gitops_resources", app=SHOP) == 11


def test_source_fetch_durations_are_a_histogram_without_labels(metrics: OperatorMetrics,
                                                               endpoint: Server) -> None:
    metrics.source_fetched(0.2)
    metrics.source_fetched(3.0)
    kind, samples = scrape(endpoint)["gitops_source_fetch_duration_seconds"]
    assert kind == "histogram"
    assert value(samples, "gitops_source_fetch_duration_seconds_count") == 2
    assert value(samples, "gitops_source_fetch_duration_seconds_sum") == pytest.approx(3.2)
    assert value(samples, "gitops_source_fetch_duration_seconds_bucket", le="0.25") == 1


def test_forget_removes_every_series_of_a_deleted_app(metrics: OperatorMetrics,
                                                      endpoint: Server) -> None:
    for app in (SHOP, WEB):
        metrics.reconciled(app, "success", 0.1)
        metrics.reconciled(app, "error", 0.1)
        metrics.app_state(app, out_of_sync=False, healthy=True, resources=1)
    metrics.forget(SHOP)
    metrics.forget("never/seen")
    assert metrics.apps() == frozenset({WEB})
    families = scrape(endpoint)
    labelled = [s for _, samples in families.values() for s in samples if "app" in s.labels]
    assert labelled, "the other application keeps its series"
    assert {s.labels["app"] for s in labelled} == {WEB}
    metrics.reconciled(SHOP, "success", 0.1)  # a re-created app starts from zero
    samples = scrape(endpoint)["gitops_reconcile"][1]
    assert value(samples, "gitops_reconcile_total", app=SHOP, result="success") == 1


def test_each_instance_has_its_own_registry_never_the_global_one() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.reconciled(SHOP, "success", 0.1)
    assert b'gitops_reconcile_total{app="gitops/shop",result="success"} 1.0' in first.exposition()[0]
    assert b"gitops/shop" not in second.exposition()[0]
    assert "gitops_reconcile_total" not in {s.name for f in REGISTRY.collect() for s in f.samples}
    shared = CollectorRegistry()
    OperatorMetrics(shared).app_state(WEB, out_of_sync=True, healthy=True, resources=0)
    assert shared.get_sample_value("gitops_app_out_of_sync", {"app": WEB}) == 1


def test_a_result_other_than_success_or_error_is_refused(metrics: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="success"):
        metrics.reconciled(SHOP, "ok", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="application key"):
        metrics.app_state("", out_of_sync=False, healthy=True, resources=0)
