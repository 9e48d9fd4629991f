"""bench/images.py runs end to end at a small scale (a smoke test: no verdict below 5,000 tags)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gitops.testing.registry import registry_binary

BENCH = Path(__file__).resolve().parent.parent / "bench" / "images.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_images", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_images"] = module
    spec.loader.exec_module(module)
    return module


def test_tag_names_mix_releases_prereleases_and_builds(bench: ModuleType) -> None:
    tags = bench.tag_names(22)
    assert len(set(tags)) == 22
    assert "1.0.0" in tags and "1.0.6-rc.1" in tags
    assert sum(tag.startswith("main-") for tag in tags) == 2


def test_the_bench_runs_and_reports_round_trips(bench: ModuleType,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed")
    assert bench.main(["--tags", "40", "--runs", "1"]) == 2  # below the scale
    out = capsys.readouterr().out
    assert "repository: 40 tags pushed" in out
    assert "chosen by semver:^1.0: 1.0.39" in out  # 1.0.39 is the highest release
    assert "registry round trips per scan: 1 " in out
    assert "result: no verdict" in out
