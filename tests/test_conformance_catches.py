"""The kits fail plugins that break their contract: each case plants one realistic defect
in a built-in and runs the matching kit on it in a pytester session."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

TARGET_HEADER = """
import contextlib, copy
import pytest
from gitops.model import Resource
from gitops.testing import MemoryTarget
from gitops.testing.conformance import TargetConformance
"""

CASES: dict[str, tuple[str, str, list[str]]] = {
    # name: (module body, -k expression, tests that must fail)
    "target merges instead of replacing, yet declares EXACT": (
        TARGET_HEADER + """
class Merging(MemoryTarget):
    def apply(self, resource, *, dry_run=False):
        old = self.live([resource.key]).get(resource.key)
        if old is not None and "data" in old.manifest:
            merged = copy.deepcopy(resource.manifest)
            merged["data"] = {**old.manifest["data"], **merged.get("data", {})}
            resource = Resource(resource.key, resource.api_version, merged, resource.origin)
        return super().apply(resource, dry_run=dry_run)

class TestMerging(TargetConformance):
    @pytest.fixture
    def target(self):
        return Merging()
""",
        "update or drops_fields",
        ["test_update_replaces_fields",
         "test_convergence_law_after_an_update_that_drops_fields*configmap drops a key*"],
    ),
    "target declares a lock that does not lock": (
        TARGET_HEADER + """
class Unlocked(MemoryTarget):
    def lock(self, inventory):
        return contextlib.nullcontext()

class TestUnlocked(TargetConformance):
    @pytest.fixture
    def target(self):
        return Unlocked()

    @pytest.fixture
    def reopen(self, target):
        return target.with_faults
""",
        "lock",
        ["test_lock_held_by_one_handle_conflicts_or_serializes_on_another"],
    ),
    "target declares supports_watch but never reports": (
        TARGET_HEADER + """
class Deaf(MemoryTarget):
    supports_watch = True

    def watch(self, handler):
        return lambda: None

class TestDeaf(TargetConformance):
    @pytest.fixture
    def target(self):
        return Deaf()

    @pytest.fixture
    def reopen(self, target):
        return target.with_faults

    @pytest.fixture
    def patience(self):
        return 0.5
""",
        "watch",
        ["test_watch_reports_a_change_someone_else_makes"],
    ),
    "target reports no owners though it says it does": (
        TARGET_HEADER + """
class Blind(MemoryTarget):
    def owners(self, keys, inventory):
        return {}

class TestBlind(TargetConformance):
    @pytest.fixture
    def target(self):
        return Blind()
""",
        "owners",
        ["test_owners_names_the_inventory_that_lists_a_key"],
    ),
    "differ mutates live and shows Secret values": (
        """
import json
import pytest
from gitops.differs.structural import StructuralDiffer
from gitops.model import Diff
from gitops.testing.conformance import DifferConformance

class Careless(StructuralDiffer):
    def diff(self, desired, live, policy=None):
        if live is not None:
            live.manifest.get("metadata", {}).pop("managedFields", None)
        diff = super().diff(desired, live) if policy is None else super().diff(desired, live, policy)
        return Diff(diff.changed, diff.patch, json.dumps(desired.manifest))

class TestCareless(DifferConformance):
    @pytest.fixture
    def differ(self):
        return Careless()
""",
        "mutates or secret",
        ["test_never_mutates_its_inputs*", "test_secret_values_are_never_shown*"],
    ),
    "differ whose patch does not converge": (
        """
import pytest
from gitops.differs.structural import StructuralDiffer
from gitops.model import Diff
from gitops.testing.conformance import DifferConformance

class Lazy(StructuralDiffer):
    def diff(self, desired, live, policy=None):
        diff = super().diff(desired, live) if policy is None else super().diff(desired, live, policy)
        return Diff(diff.changed, diff.patch[:1], diff.text)  # only the first operation

class TestLazy(DifferConformance):
    @pytest.fixture
    def differ(self):
        return Lazy()
""",
        "converges and not property",
        ["test_the_patch_converges*live extra*"],
    ),
    "renderer follows symlinks and writes a cache into the tree": (
        """
from pathlib import Path
import pytest
from gitops.manifests import check_documents, parse_documents
from gitops.renderers.base import Renderer
from gitops.testing.conformance import RendererConformance, plain_yaml_files

class Sloppy(Renderer):
    def render(self, root, context):
        documents = []
        for path in sorted(Path(root).rglob("*.yaml")):
            rel = path.relative_to(root).as_posix()
            documents += parse_documents(path.read_bytes(), rel)
        (Path(root) / ".render-cache").write_text("cached")
        return check_documents(documents)

class TestSloppy(RendererConformance):
    @pytest.fixture
    def renderer(self):
        return Sloppy()

    @pytest.fixture
    def manifest_files(self):
        return plain_yaml_files
""",
        "symlink or writes",
        ["test_never_writes_into_the_tree", "test_a_symlink_out_of_the_tree*file*"],
    ),
    "source whose fetch ignores the revision": (
        """
import pytest
from gitops.model import Artifact
from gitops.sources.directory import DirectorySource
from gitops.testing.conformance import SourceConformance, write_files

class Forgetful(DirectorySource):
    def fetch(self, revision):
        current = self.resolve()
        return Artifact(url=self.url, revision=revision, digest=current, path=self.root)

class TestForgetful(SourceConformance):
    @pytest.fixture
    def make_source(self, tmp_path):
        def make(files):
            return Forgetful(write_files(tmp_path / "src", files))
        return make

    @pytest.fixture
    def update_source(self):
        pytest.skip("not needed here")
""",
        "unknown_revision",
        ["test_fetch_of_an_unknown_revision_is_a_clear_error"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_kit_fails_a_broken_plugin(pytester: pytest.Pytester, case: str) -> None:
    body, selection, must_fail = CASES[case]
    pytester.makepyfile(textwrap.dedent(body))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-rf", "-k", selection)
    assert result.ret != 0, f"the kit passed a plugin with a defect ({case})"
    result.stdout.fnmatch_lines_random([f"FAILED *::{name}*" for name in must_fail])
