"""The Renderer contract as a pytest mixin: subclass :class:`RendererConformance`, add fixtures.

::

    class TestMyRenderer(RendererConformance):
        @pytest.fixture
        def renderer(self):                # required
            return MyRenderer()

        @pytest.fixture
        def manifest_files(self):          # required: manifests -> a tree rendering to them
            return plain_yaml_files        # for a renderer of plain YAML files

``manifest_files(manifests)`` returns ``{relative path: text}``, a tree the renderer
renders into exactly ``manifests``. Optional: ``invalid_files`` (a tree the renderer must
refuse, and the file its error must name; by default a broken YAML file), and
``reference_outside`` (``relpath -> files``: a tree whose renderer-specific reference,
such as kustomize's ``resources: [../../outside]``, points at the folder ``relpath``
outside the tree).

Covered: the output is the declared manifests, as declared (not placed: no default
namespace) and valid for :func:`gitops.manifests.place`; rendering is pure (same tree and
context, equal output) and never writes into the tree; nothing outside
``context.tree`` is ever read (a symlink or a reference to a file outside is refused or
ignored, and its content never shows); errors are ManifestErrors naming a file, and never
quote the input.

This module must never rely on one renderer's file layout beyond ``manifest_files``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import ManifestError
from gitops.manifests import place, validate_manifests
from gitops.model import RenderContext, Resource, ResourceKey
from gitops.renderers.base import Renderer
from gitops.testing.conformance.common import (
    UNICODE_TEXT,
    assert_contains,
    cluster_role,
    configmap,
    deployment,
    key_of,
    namespace_manifest,
    secret,
)

__all__ = ["OUTSIDE_VALUE", "QUOTED_VALUE", "ManifestFiles", "RendererConformance", "write_files"]

#: ``manifest_files(manifests) -> {relative path: text}``.
ManifestFiles = Callable[[Sequence[Mapping[str, Any]]], dict[str, str]]
#: ``reference_outside(relpath) -> {relative path: text}``.
ReferenceOutside = Callable[[str], dict[str, str]]

#: The content of files outside the tree: it must never reach the output or an error.
OUTSIDE_VALUE = "outside-the-tree-Do-Not-Read-7731"
#: A value in an invalid file: an error must not quote it.
QUOTED_VALUE = "Hunter2-Never-Quoted"


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` (created); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    return root


def _declared() -> list[dict[str, Any]]:
    """Manifests of every shape: with and without a namespace, cluster-scoped, a Secret."""
    return [
        namespace_manifest("team-a"),
        configmap("no-namespace", "", {"text": UNICODE_TEXT, "empty": ""}),
        configmap("in-namespace", "team-a"),
        deployment("web", "team-a"),
        secret("creds", "team-a"),
        cluster_role("conformance:render.view"),
    ]


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every entry under ``root`` (links not followed): relpath -> (mode, mtime_ns, content)."""
    entries: dict[str, tuple[int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if os.path.islink(path):
                content: bytes | str = os.readlink(path)
            elif os.path.isfile(path):
                content = Path(path).read_bytes()
            else:
                content = b""
            entries[os.path.relpath(path, root)] = (info.st_mode, info.st_mtime_ns, content)
    return entries


class RendererConformance:
    """The Renderer contract as pytest tests. Provide ``renderer`` and ``manifest_files``."""

    # -- fixtures a renderer provides ------------------------------------------------------

    @pytest.fixture
    def renderer(self) -> Renderer:
        """The renderer under test. Override in the renderer's test class."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `renderer` fixture returning the Renderer "
            "under test (see gitops.testing.conformance)"
        )

    @pytest.fixture
    def manifest_files(self) -> ManifestFiles:
        """``manifests -> {relpath: text}`` that this renderer renders into those manifests."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `manifest_files` fixture: a callable taking "
            "a list of manifests and returning {relative path: text}, a tree the renderer "
            "renders into exactly them (plain_yaml_files for plain YAML)"
        )

    @pytest.fixture
    def invalid_files(self) -> tuple[dict[str, str], str]:
        """``(files, path)``: a tree the renderer must refuse, and the file its error names."""
        text = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\n"
                f"stringData:\n  password: !{QUOTED_VALUE} [unclosed\n")
        return {"app/broken.yaml": text}, "app/broken.yaml"

    @pytest.fixture
    def reference_outside(self) -> ReferenceOutside:
        """``relpath -> files`` that refer, the renderer's way, to the folder ``relpath``
        (relative to the root, outside the tree; it holds ``manifest_files`` output)."""
        pytest.skip(f"{type(self).__name__} defines no `reference_outside` fixture")

    # -- helpers ---------------------------------------------------------------------------

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        """An empty folder to build the artifact tree in."""
        root = tmp_path / "tree"
        root.mkdir()
        return root

    @pytest.fixture
    def outside(self, tmp_path: Path, manifest_files: ManifestFiles) -> Path:
        """A folder beside the tree, in the renderer's format, that nobody may read through
        the tree: it renders to a ConfigMap ``stolen`` holding :data:`OUTSIDE_VALUE`."""
        stolen = configmap("stolen", "team-a", {"value": OUTSIDE_VALUE})
        return write_files(tmp_path / "outside", manifest_files([stolen]))

    @staticmethod
    def render(renderer: Renderer, root: Path, context: RenderContext | None = None
               ) -> list[Resource]:
        """``renderer.render(root, context)`` (``context.tree`` defaults to ``root``), checked
        to be a list of Resources."""
        resources = renderer.render(root, context or RenderContext(tree=root))
        assert isinstance(resources, list), f"render() returned {type(resources).__name__}"
        assert all(isinstance(r, Resource) for r in resources), "render() returned a non-Resource"
        return resources

    # -- output ----------------------------------------------------------------------------

    def test_renders_the_declared_manifests_as_declared(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path
    ) -> None:
        declared = _declared()
        write_files(tree, manifest_files(declared))
        rendered = self.render(
            renderer, tree, RenderContext(tree=tree, default_namespace="not-applied")
        )
        by_key = {r.key: r for r in rendered}
        assert len(by_key) == len(rendered), "render() returned a key twice"
        assert set(by_key) == {key_of(m) for m in declared}, (
            f"rendered {sorted(map(str, by_key))}, declared {sorted(str(key_of(m)) for m in declared)}"
        )
        for manifest in declared:
            resource = by_key[key_of(manifest)]
            assert resource.api_version == manifest["apiVersion"]
            assert_contains(resource.manifest, manifest)
            assert Resource.from_manifest(resource.manifest).key == resource.key, (
                f"{resource.key}: the key does not match its manifest"
            )
        unplaced = by_key[ResourceKey("", "ConfigMap", "", "no-namespace")]
        assert "namespace" not in unplaced.manifest["metadata"], (
            "render() placed a resource: the default namespace is the engine's to apply"
        )

    def test_output_is_valid_for_place(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path
    ) -> None:
        write_files(tree, manifest_files(_declared()))
        rendered = self.render(renderer, tree)
        checked = validate_manifests([r.manifest for r in rendered], default_namespace=None)
        assert [r.key for r in checked] == [r.key for r in rendered]
        placed = {r.key: r for r in place(rendered, default_namespace="elsewhere")}
        assert ResourceKey("", "ConfigMap", "elsewhere", "no-namespace") in placed
        assert ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "",
                           "conformance:render.view") in placed

    def test_an_empty_set_renders_to_nothing(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path
    ) -> None:
        write_files(tree, manifest_files([]))
        assert self.render(renderer, tree) == []

    def test_renders_only_below_its_root(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path
    ) -> None:
        write_files(tree / "app", manifest_files([configmap("mine", "team-a")]))
        write_files(tree / "other", manifest_files([configmap("sibling", "team-a")]))
        rendered = self.render(renderer, tree / "app", RenderContext(tree=tree))
        assert [r.key.name for r in rendered] == ["mine"], "render() read beyond its root"

    # -- purity ----------------------------------------------------------------------------

    def test_same_tree_and_context_render_equal_output(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path
    ) -> None:
        write_files(tree, manifest_files(_declared()))
        context = RenderContext("sha256:" + "a" * 64, tree, "team-a", {"VAR": "x"})
        first = self.render(renderer, tree, context)
        second = self.render(renderer, tree, RenderContext("sha256:" + "a" * 64, tree, "team-a",
                                                           {"VAR": "x"}))
        assert [(r.key, r.api_version, r.manifest) for r in first] == [
            (r.key, r.api_version, r.manifest) for r in second
        ], "two renders of the same tree and context differ"

    def test_never_writes_into_the_tree(
        self, renderer: Renderer, manifest_files: ManifestFiles,
        invalid_files: tuple[dict[str, str], str], tmp_path: Path,
    ) -> None:
        good = write_files(tmp_path / "good", manifest_files(_declared()))
        bad = write_files(tmp_path / "bad", invalid_files[0])
        before = _snapshot(tmp_path)
        self.render(renderer, good)
        with pytest.raises(ManifestError):
            self.render(renderer, bad)
        assert _snapshot(tmp_path) == before, "render() changed files or folders"

    # -- reading outside the tree ----------------------------------------------------------

    @pytest.mark.parametrize("link", ["file", "folder"])
    @pytest.mark.parametrize("where", ["root is the tree", "root below the tree"])
    def test_a_symlink_out_of_the_tree_is_refused_or_ignored(
        self, renderer: Renderer, manifest_files: ManifestFiles, tree: Path, outside: Path,
        link: str, where: str,
    ) -> None:
        root = tree if where == "root is the tree" else tree / "app"
        write_files(root, manifest_files([configmap("inside", "team-a")]))
        if link == "file":  # each file of the outside folder, linked from inside the root
            for path in sorted(p for p in outside.rglob("*") if p.is_file()):
                linked = root / "linked" / path.relative_to(outside)
                linked.parent.mkdir(parents=True, exist_ok=True)
                linked.symlink_to(path)
        else:
            (root / "linked").symlink_to(outside, target_is_directory=True)
        self._assert_outside_unread(renderer, root, tree)

    def test_a_reference_out_of_the_tree_is_refused_or_ignored(
        self, renderer: Renderer, reference_outside: ReferenceOutside, tree: Path,
        outside: Path,
    ) -> None:
        root = tree / "app"
        write_files(root, reference_outside(os.path.relpath(outside, root)))
        self._assert_outside_unread(renderer, root, tree)

    def _assert_outside_unread(self, renderer: Renderer, root: Path, tree: Path) -> None:
        try:
            rendered = self.render(renderer, root, RenderContext(tree=tree))
        except ManifestError as exc:
            assert OUTSIDE_VALUE not in str(exc), "an error quotes a file outside the tree"
            return
        names = {r.key.name for r in rendered}
        assert "stolen" not in names, "render() read a file outside context.tree"
        assert OUTSIDE_VALUE not in repr([r.manifest for r in rendered])

    # -- errors ----------------------------------------------------------------------------

    def test_an_invalid_tree_is_a_manifest_error_naming_the_file(
        self, renderer: Renderer, invalid_files: tuple[dict[str, str], str], tree: Path
    ) -> None:
        files, named = invalid_files
        write_files(tree, files)
        with pytest.raises(ManifestError) as info:
            self.render(renderer, tree)
        message = str(info.value)
        assert named in message, f"the error does not name {named}: {message}"
        assert QUOTED_VALUE not in message, "the error quotes the input"
