"""The conformance kits run against the built-in backends, and the kits' own behaviour.

The Kubernetes target runs the Target kit in tests/test_kubernetes_target_conformance.py,
the Git and OCI sources run the Source kit in tests/git and tests/oci.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.differs.base import Differ
from gitops.differs.structural import StructuralDiffer
from gitops.renderers.base import Renderer
from gitops.renderers.yaml import YamlRenderer
from gitops.sources.base import Source
from gitops.targets.base import Target
from gitops.testing import KUBERNETES_SCOPES, MemoryTarget
from gitops.testing.conformance import (
    DifferConformance,
    RendererConformance,
    SourceConformance,
    TargetConformance,
    plain_yaml_files,
)
from gitops.testing.conformance.renderer import ManifestFiles

pytest_plugins = ["pytester"]


class TestMemoryTargetConformance(TargetConformance):
    @pytest.fixture
    def target(self) -> Target:
        return MemoryTarget()

    @pytest.fixture
    def reopen(self, target: MemoryTarget) -> Callable[[], Target]:
        return target.with_faults


class TestScopedMemoryTargetConformance(TestMemoryTargetConformance):
    """With scopes, the mock also rejects namespaced kinds without a namespace (and back)."""

    @pytest.fixture
    def target(self) -> Target:
        return MemoryTarget(scopes=KUBERNETES_SCOPES)


class TestFileTreeTargetConformance(TargetConformance):
    @pytest.fixture
    def target(self, tmp_path: Path) -> Target:
        filetree = pytest.importorskip("gitops.targets.filetree")
        target: Target = filetree.FileTreeTarget.from_url(f"dir:{tmp_path / 'live'}")
        return target

    @pytest.fixture
    def reopen(self, target: Target) -> Callable[[], Target]:
        return lambda: type(target).from_url(target.url)


class TestStructuralDifferConformance(DifferConformance):
    @pytest.fixture
    def differ(self) -> Differ:
        return StructuralDiffer()


class TestYamlRendererConformance(RendererConformance):
    @pytest.fixture
    def renderer(self) -> Renderer:
        return YamlRenderer()

    @pytest.fixture
    def manifest_files(self) -> ManifestFiles:
        return plain_yaml_files


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())


class TestDirectorySourceConformance(SourceConformance):
    @pytest.fixture
    def roots(self) -> dict[int, Path]:
        return {}

    @pytest.fixture
    def make_source(
        self, tmp_path: Path, roots: dict[int, Path]
    ) -> Callable[[dict[str, str]], Source]:
        directory = pytest.importorskip("gitops.sources.directory")
        counter = itertools.count()

        def make(files: dict[str, str]) -> Source:
            root = tmp_path / f"source-{next(counter)}"
            _write_tree(root, files)
            source: Source = directory.DirectorySource.from_url(f"dir:{root}")
            roots[id(source)] = root
            return source

        return make

    @pytest.fixture
    def update_source(self, roots: dict[int, Path]) -> Callable[[Source, dict[str, str]], None]:
        def update(source: Source, files: dict[str, str]) -> None:
            root = roots[id(source)]
            shutil.rmtree(root)
            _write_tree(root, files)

        return update


# -- the kit itself ----------------------------------------------------------------------

# The raw MemoryTarget has no known defect left for the kit to skip.
_KNOWN_MEMORY_DEFECTS: tuple[str, ...] = ()


def test_the_mixins_are_not_collected_on_their_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "from gitops.testing.conformance import (\n"
        "    DifferConformance, RendererConformance, SourceConformance, TargetConformance,\n"
        ")\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes()  # nothing collected, nothing run


@pytest.mark.parametrize(
    ("base", "fixture"),
    [("TargetConformance", "target"), ("SourceConformance", "make_source"),
     ("DifferConformance", "differ"), ("RendererConformance", "renderer")],
)
def test_a_missing_fixture_fails_with_a_clear_message(
    pytester: pytest.Pytester, base: str, fixture: str
) -> None:
    pytester.makepyfile(
        f"from gitops.testing.conformance import {base}\n\n"
        f"class TestIncomplete({base}):\n    pass\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-x")
    result.stdout.fnmatch_lines([f"*must define a*`{fixture}` fixture*"])
    assert result.ret != 0


def test_a_subclass_providing_the_fixture_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n"
        "from gitops.testing import MemoryTarget\n"
        "from gitops.testing.conformance import TargetConformance\n\n"
        "class TestMine(TargetConformance):\n"
        "    @pytest.fixture\n"
        "    def target(self):\n"
        "        return MemoryTarget()\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *_KNOWN_MEMORY_DEFECTS, "-q")
    assert result.ret == 0
    assert result.parseoutcomes()["passed"] >= 20


def test_capability_fixtures_skip_what_a_target_does_not_declare(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        "import pytest\n"
        "from gitops.testing import MemoryTarget\n"
        "from gitops.testing.conformance import TargetConformance\n\n"
        "class Plain(MemoryTarget):\n"
        "    supports_dry_run = False\n"
        "    supports_health = False\n\n"
        "class TestPlain(TargetConformance):\n"
        "    @pytest.fixture\n"
        "    def target(self):\n"
        "        return Plain()\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *_KNOWN_MEMORY_DEFECTS, "-q", "-rs")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1] *: target does not declare supports_dry_run",
        "SKIPPED [[]1] *: target does not declare supports_dry_run",
        "SKIPPED [[]1] *: target does not declare supports_health",
    ])
    assert result.stdout.str().count("does not declare supports_") == 3


def test_the_suite_leaves_nothing_behind_on_a_shared_target(pytester: pytest.Pytester) -> None:
    MemoryTarget.clear_shared()
    pytester.makepyfile(
        "import pytest\n"
        "from gitops.testing import MemoryTarget\n"
        "from gitops.testing.conformance import TargetConformance\n\n"
        "class TestShared(TargetConformance):\n"
        "    @pytest.fixture\n"
        "    def target(self):\n"
        "        return MemoryTarget.shared('conformance-probe')\n"
    )
    try:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *_KNOWN_MEMORY_DEFECTS, "-q")
        assert result.ret == 0
        assert MemoryTarget.shared("conformance-probe").objects() == {}
    finally:
        MemoryTarget.clear_shared()
