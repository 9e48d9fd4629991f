"""The plain-Python controller example (examples/controller-loop/controller.py): several
applications reconciled by one loop, events logged per application and counted in metrics,
one broken application never stopping the others."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTROLLER = ROOT / "examples" / "controller-loop" / "controller.py"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text``."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1])) == labels:
            return float(match[2])
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_the_controller_reconciles_logs_and_counts(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text("kind: ConfigMap\nmetadata: {name: no-api-version}\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(CONTROLLER), "--iterations", "2", "--interval", "0.05",
         "--app", "shop", str(ROOT / "examples" / "app"), f"dir:{out}",
         "--app", "memory", str(ROOT / "examples" / "app"), "mock:",
         "--app", "broken", str(broken), "mock:"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    logs, metrics = done.stderr, done.stdout

    # the file tree holds the application, the mock: one too (7 objects each)
    assert (out / "shop" / "Deployment.apps" / "shop.yaml").is_file()
    for app in ("shop", "memory"):
        assert metric(metrics, "controller_syncs_total", app=app, outcome="succeeded") == 2
        assert metric(metrics, "controller_changes_total", app=app, action="create") == 7
        assert metric(metrics, "controller_events_total", app=app, reason="Created") == 7
        assert metric(metrics, "controller_sync_duration_seconds_count", app=app) == 2
        assert f"controller.{app} INFO Created: Deployment.apps/shop/shop" in logs
        assert logs.count(f"controller.{app} INFO SyncSucceeded:") == 2
    # the broken application is reported each time, and only it
    assert metric(metrics, "controller_events_total", app="broken", reason="ReconcileError") == 2
    assert "controller_syncs_total{app=\"broken\"" not in metrics
    assert logs.count("controller.broken WARNING ReconcileError:") == 2
    assert "bad.yaml" in logs


def test_a_bad_url_is_one_line_naming_it_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(CONTROLLER), "--iterations", "1", "--interval", "0.05",
         "--app", "shop", str(ROOT / "examples" / "app"), "mock:",
         "--app", "web", "gti+https://git.example.com/web.git", "mock:"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "controller: no source plugin for 'gti'; installed sources: "), done.stderr
