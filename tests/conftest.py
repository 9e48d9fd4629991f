"""Shared test configuration: hypothesis profiles, and fixtures several test folders use.

``ci`` (selected when ``CI`` is set) is derandomized and bounded, with no deadline,
so property tests are deterministic; ``dev`` (the default) is the same but random;
``long`` explores much more for local runs: ``HYPOTHESIS_PROFILE=long make test``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["gitops.testing.kube.fixtures", "kube_targets"]

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


#: A kustomize overlay that reaches its base with ``../../base`` (render ``overlays/prod``).
OVERLAY = {
    "base/kustomization.yaml": "resources:\n- cm.yaml\n",
    "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\n",
    "overlays/prod/kustomization.yaml": "resources:\n- ../../base\nnamePrefix: prod-\n",
}


@pytest.fixture
def kustomize_build() -> Callable[[Path], str]:
    """``kustomize_build(folder)``: the real ``kubectl kustomize`` output (skips without it)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (kustomize) is not installed")

    def build(folder: Path) -> str:
        return subprocess.run([kubectl, "kustomize", os.fspath(folder)], check=True,
                              capture_output=True, text=True).stdout

    return build


@pytest.fixture
def overlay_files() -> dict[str, str]:
    """The files of :data:`OVERLAY` (``overlays/prod`` builds ``prod-base``)."""
    return dict(OVERLAY)
