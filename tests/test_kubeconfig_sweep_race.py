"""A cluster kubeconfig the sweep (this process's or another's) removes while it is
being written or reused is there when the generator hands its path out."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from gitops.appsets.generators import clusters
from gitops.appsets.generators.clusters import KUBECONFIG_RETENTION

CONFIG = {"apiVersion": "v1", "kind": "Config", "current-context": "c"}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))


def test_a_kubeconfig_unused_for_a_week_and_reused_now_is_kept() -> None:
    """The sweep is due and the file is a week old: the path handed out exists."""
    path = clusters._write_kubeconfig(CONFIG)
    week_ago = time.time() - KUBECONFIG_RETENTION - 60
    for old in (path, path.parent / ".swept"):
        os.utime(old, (week_ago, week_ago))
    assert clusters._write_kubeconfig(CONFIG) == path
    assert path.exists(), "the sweep took the kubeconfig its generator just handed out"


def test_a_kubeconfig_another_process_swept_just_now_is_written_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = clusters._write_kubeconfig(CONFIG)
    real = os.utime

    def swept_first(target: Any, *args: Any, **kwargs: Any) -> None:
        if Path(target) == path:
            path.unlink(missing_ok=True)  # another process's sweep, between two calls
        real(target, *args, **kwargs)

    monkeypatch.setattr(os, "utime", swept_first)
    assert clusters._write_kubeconfig(CONFIG) == path
    assert path.exists() and path.read_text(encoding="utf-8").startswith("apiVersion")
