"""Prometheus series of image automation, on the operator's registry.

:class:`ImageMetrics` registers its series on the ``CollectorRegistry`` of
:class:`gitops.operator.metrics.OperatorMetrics`, so ``/metrics`` serves them with the
operator's. Labels are low-cardinality: the object key (``namespace/name``), a result,
and for ``gitops_image_policy_latest_info`` the image and the one tag currently chosen
(the previous tag's series is removed when the choice moves). Thread-safe; no I/O.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gitops.operator.metrics import DURATION_BUCKETS

__all__ = ["ImageMetrics", "ScanResult", "UpdateResult"]

ScanResult = Literal["success", "error"]
UpdateResult = Literal["pushed", "unchanged", "error"]
_SCAN_RESULTS: tuple[ScanResult, ...] = ("success", "error")
_UPDATE_RESULTS: tuple[UpdateResult, ...] = ("pushed", "unchanged", "error")


class ImageMetrics:
    """The series ``docs/observability.md`` lists under "Image automation"."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._chosen: dict[str, tuple[str, str]] = {}
        self._latest = Gauge(
            "gitops_image_policy_latest_info",
            "1 for the image and tag an ImagePolicy currently chooses.",
            ["policy", "image", "tag"], registry=registry,
        )
        # prometheus-client appends "_total" to a counter's name
        self._scans = Counter(
            "gitops_image_scan", "Evaluations of an ImagePolicy (registry scan and tag "
            "selection), by result (success or error).",
            ["policy", "result"], registry=registry,
        )
        self._updates = Counter(
            "gitops_image_update", "Runs of an ImageUpdateAutomation, by result (pushed, "
            "unchanged or error).",
            ["automation", "result"], registry=registry,
        )
        self._durations = Histogram(
            "gitops_image_update_duration_seconds",
            "Time one run of an ImageUpdateAutomation took (clone, rewrite, commit, push).",
            ["automation"], buckets=DURATION_BUCKETS, registry=registry,
        )

    def scanned(self, policy: str, result: ScanResult, *, image: str = "",
                tag: str = "") -> None:
        """Count one evaluation of ``policy``; on success, set the chosen image and tag."""
        if result not in _SCAN_RESULTS:
            raise ValueError(f"scan result must be one of {_SCAN_RESULTS}, not {result!r}")
        self._scans.labels(policy=policy, result=result).inc()
        if result != "success" or not tag:
            return
        with self._lock:
            before = self._chosen.get(policy)
            self._chosen[policy] = (image, tag)
        if before is not None and before != (image, tag):
            _remove(self._latest, policy, *before)
        self._latest.labels(policy=policy, image=image, tag=tag).set(1)

    def updated(self, automation: str, result: UpdateResult, seconds: float) -> None:
        """Count one run of ``automation`` and observe how long it took."""
        if result not in _UPDATE_RESULTS:
            raise ValueError(f"update result must be one of {_UPDATE_RESULTS}, not {result!r}")
        self._updates.labels(automation=automation, result=result).inc()
        self._durations.labels(automation=automation).observe(max(0.0, seconds))

    def forget_policy(self, policy: str) -> None:
        """Remove every series of a policy no longer declared."""
        with self._lock:
            before = self._chosen.pop(policy, None)
        if before is not None:
            _remove(self._latest, policy, *before)
        for result in _SCAN_RESULTS:
            _remove(self._scans, policy, result)

    def forget_automation(self, automation: str) -> None:
        """Remove every series of an automation no longer declared."""
        for result in _UPDATE_RESULTS:
            _remove(self._updates, automation, result)
        _remove(self._durations, automation)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # a series never set
        metric.remove(*labels)
