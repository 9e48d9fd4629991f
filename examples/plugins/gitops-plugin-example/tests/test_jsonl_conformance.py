"""The plugin against gitops' conformance kits: all a plugin needs to say it keeps the contracts.

Each class names the plugin object under test; the kits bring the tests (48 for the
target, 12 for the renderer) and skip what the plugin does not declare.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from gitops.renderers.base import Renderer
from gitops.targets.base import Target
from gitops.testing.conformance import RendererConformance, TargetConformance
from gitops.testing.conformance.renderer import QUOTED_VALUE

from gitops_plugin_example import JsonlRenderer, JsonlTarget


class TestJsonlTargetConformance(TargetConformance):
    @pytest.fixture
    def target(self, tmp_path: Path) -> Target:
        return JsonlTarget.from_url(f"jsonl:{tmp_path / 'live.jsonl'}", fsync=False)

    @pytest.fixture
    def reopen(self, target: JsonlTarget) -> Callable[[], Target]:
        return lambda: JsonlTarget.from_url(target.url, fsync=False)


def jsonl_files(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Two ``.jsonl`` files (odd and even manifests), one manifest per line."""
    files = {"app/first.jsonl": "", "app/nested/second.jsonl": ""}
    for index, manifest in enumerate(manifests):
        name = "app/first.jsonl" if index % 2 == 0 else "app/nested/second.jsonl"
        files[name] += json.dumps(manifest, ensure_ascii=False) + "\n"
    return files


class TestJsonlRendererConformance(RendererConformance):
    @pytest.fixture
    def renderer(self) -> Renderer:
        return JsonlRenderer()

    @pytest.fixture
    def manifest_files(self) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, str]]:
        return jsonl_files

    @pytest.fixture
    def invalid_files(self) -> tuple[dict[str, str], str]:
        good = '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok"}}\n'
        bad = ('{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, '
               f'"stringData": {{"password": {QUOTED_VALUE}}}}}\n')
        return {"app/broken.jsonl": good + bad}, "app/broken.jsonl"
