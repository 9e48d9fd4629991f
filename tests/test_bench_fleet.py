"""bench/fleet.py runs, small: every generated Application planned once, then only the
Applications of the folder a commit changed."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fleet.py"


def test_fleet_bench_small(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    spec = importlib.util.spec_from_file_location("bench_fleet", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = module
    spec.loader.exec_module(module)
    assert module.main(["--folders", "4", "--targets", "3", "--interval", "2s"]) == 0
    out = capsys.readouterr().out
    assert "applications generated: 12" in out and "re-planned 3 of 12 (expected 3)" in out
    assert "3 wrote to their target (expected 3)" in out and "budgets" in out and "OVER" not in out
