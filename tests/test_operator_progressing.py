"""The scheduler looks again soon at an application found Progressing (a rollout under
way), backing off 1s, 2s, 4s... up to its interval, so it turns Ready soon after its
workloads settle instead of a whole interval later. A real ``dir:`` source and the
in-memory ``mock:`` target, whose stored status plays the workload controller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import yaml
from operator_support import MemoryStatusStore, wait_for

from gitops.apps import Application
from gitops.model import ResourceKey
from gitops.operator import Operator
from gitops.targets.memory import MemoryTarget

DEPLOYMENT = ResourceKey("apps", "Deployment", "default", "web")
ROLLED_OUT = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
              "readyReplicas": 1, "availableReplicas": 1}


class Looks:
    """Metrics that only remember when each reconcile ended."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def reconciled(self, app: str, result: Literal["success", "error"], seconds: float) -> None:
        self.times.append(time.monotonic())

    def app_state(self, app: str, *, out_of_sync: bool, healthy: bool, resources: int) -> None:
        return None

    def source_fetched(self, seconds: float) -> None:
        return None

    def forget(self, app: str) -> None:
        return None


@pytest.fixture
def target_name() -> Iterator[str]:
    yield f"progressing-{uuid.uuid4().hex[:8]}"
    MemoryTarget.clear_shared()


def test_a_progressing_application_is_looked_at_again_with_backoff_until_ready(
    tmp_path: Path, target_name: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "web.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
    target = MemoryTarget.shared(target_name)
    app = Application.model_validate({
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"source": {"url": f"dir:{src}"}, "target": {"url": f"mock:{target_name}"},
                 "interval": "1h"}})
    store, looks = MemoryStatusStore(), Looks()
    operator = Operator(store, workers=1, metrics=looks)
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: len(looks.times) >= 3, 10, "two looks again")
        status = store.data[app.key]
        assert (status.sync, status.health, status.ready) == ("Synced", "Progressing", False)
        first, second = (b - a for a, b in zip(looks.times[:2], looks.times[1:3], strict=True))
        assert 0.8 < first < second and second > 1.8, looks.times  # 1s, then 2s: backing off

        target.set_status(DEPLOYMENT, ROLLED_OUT)  # the rollout finishes
        settled = time.monotonic()
        wait_for(lambda: store.data[app.key].ready, 10, "Ready")
        assert time.monotonic() - settled < 6  # the next look (4s at most), not the interval
        status = store.data[app.key]
        assert status.health == "Healthy"
        assert [r.trigger for r in status.history] == ["start"]  # looked again, synced once
        count = len(looks.times)
        time.sleep(1.5)
        assert len(looks.times) == count  # Ready: back to the interval (an hour)
    finally:
        operator.stop()
