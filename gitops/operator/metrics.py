"""The operator's Prometheus metrics, in a registry of their own.

:class:`OperatorMetrics` owns a ``prometheus_client.CollectorRegistry`` (never the
process-global one, so two operators in one process, or a test, never collide) and
exposes the series ``docs/observability.md`` lists. Labels stay low-cardinality: the
application key (``namespace/name``) and the reconcile result, nothing per resource or
per revision. :meth:`OperatorMetrics.forget` drops every series of an application that
was deleted, so a long-lived operator does not report ghosts. Thread-safe: workers call
it concurrently. No I/O; serving the exposition is :mod:`gitops.operator.httpserver`'s job.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

__all__ = ["DURATION_BUCKETS", "OperatorMetrics", "ReconcileResult"]

ReconcileResult = Literal["success", "error"]

#: Seconds, from 10 ms (a no-op reconcile) to 5 min (a large sync gated on health).
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
_RESULTS: tuple[ReconcileResult, ...] = ("success", "error")


class OperatorMetrics:
    """The operator's metrics; ``registry`` defaults to a new private one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        self._apps: set[str] = set()
        # prometheus-client appends "_total" to a counter's name
        self._reconciles = Counter(
            "gitops_reconcile", "Reconciles of an application, by result (success or error).",
            ["app", "result"], registry=self.registry,
        )
        self._durations = Histogram(
            "gitops_reconcile_duration_seconds", "Time one reconcile of an application took.",
            ["app"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self._out_of_sync = Gauge(
            "gitops_app_out_of_sync", "1 when the application's target differs from its source.",
            ["app"], registry=self.registry,
        )
        self._healthy = Gauge(
            "gitops_app_healthy", "1 when every resource of the application is healthy.",
            ["app"], registry=self.registry,
        )
        self._resources = Gauge(
            "gitops_resources", "Objects the application owns on its target.",
            ["app"], registry=self.registry,
        )
        self._fetches = Histogram(
            "gitops_source_fetch_duration_seconds",
            "Time resolving and fetching a source took.",
            buckets=DURATION_BUCKETS, registry=self.registry,
        )

    def reconciled(self, app: str, result: ReconcileResult, seconds: float) -> None:
        """Count one reconcile of ``app`` and observe how long it took."""
        if result not in _RESULTS:
            raise ValueError(f"reconcile result must be one of {_RESULTS}, not {result!r}")
        self._remember(app)
        self._reconciles.labels(app=app, result=result).inc()
        self._durations.labels(app=app).observe(max(0.0, seconds))

    def app_state(self, app: str, *, out_of_sync: bool, healthy: bool, resources: int) -> None:
        """Set ``app``'s sync and health gauges (0 or 1) and its resource count."""
        self._remember(app)
        self._out_of_sync.labels(app=app).set(1 if out_of_sync else 0)
        self._healthy.labels(app=app).set(1 if healthy else 0)
        self._resources.labels(app=app).set(resources)

    def source_fetched(self, seconds: float) -> None:
        """Observe how long resolving and fetching one source took."""
        self._fetches.observe(max(0.0, seconds))

    def forget(self, app: str) -> None:
        """Remove every series of ``app`` (a deleted application); unknown apps are ignored."""
        with self._lock:
            self._apps.discard(app)
        for result in _RESULTS:
            _remove(self._reconciles, app, result)
        for metric in (self._durations, self._out_of_sync, self._healthy, self._resources):
            _remove(metric, app)

    def apps(self) -> frozenset[str]:
        """The applications that currently have series."""
        with self._lock:
            return frozenset(self._apps)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every series, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4

    def _remember(self, app: str) -> None:
        if not app:
            raise ValueError("an application key (namespace/name) is required")
        with self._lock:
            self._apps.add(app)

    def __repr__(self) -> str:
        return f"OperatorMetrics(apps={len(self.apps())})"


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # older clients raise for a series never set
        metric.remove(*labels)
