"""The ``auto`` renderer: pick the renderer a source folder needs, as Flux and Argo CD do.

* a kustomization file (``kustomization.yaml``, ``kustomization.yml``, ``Kustomization``)
  -> :class:`~gitops.renderers.kustomize.KustomizeRenderer`;
* ``Chart.yaml`` -> a ManifestError: Helm charts are not supported;
* a ``*.jsonnet`` file in the folder -> :class:`~gitops.renderers.jsonnet.JsonnetRenderer`
  (Jsonnet and the plain YAML beside it, like an Argo CD directory application);
* otherwise plain YAML (:class:`~gitops.renderers.yaml.YamlRenderer`). As in Flux, when a
  subfolder holds a kustomization file, that subfolder is built with kustomize and
  its other files are not read as plain manifests.

:func:`describe_folder` tells which one a folder needs without rendering it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from gitops.errors import ManifestError
from gitops.manifests import DEFAULT_LIMITS, Limits, parse_documents
from gitops.model import RenderContext, Resource
from gitops.renderers._paths import Tree, read_bounded
from gitops.renderers.base import Renderer
from gitops.renderers.jsonnet import JsonnetRenderer, has_jsonnet_entry_points
from gitops.renderers.kustomize import KustomizeRenderer
from gitops.renderers.kustomize_graph import KUSTOMIZATION_FILES, find_kustomization
from gitops.renderers.substitute import check_substituted
from gitops.renderers.yaml import YamlRenderer
from gitops.tree import is_manifest_path, walk

__all__ = ["AutoRenderer", "describe_folder"]

HELM_CHART_FILE = "Chart.yaml"


def describe_folder(path: str | os.PathLike[str]) -> str | None:
    """The renderer ``path`` needs: ``"kustomize"``, ``"jsonnet"``, ``"helm"`` (unsupported)
    or ``"yaml"``; None when ``path`` is not a folder. Reads names only, never content."""
    if not os.path.isdir(path):
        return None
    try:
        if find_kustomization(path) is not None:
            return "kustomize"
    except ManifestError:  # several kustomization files: kustomize's to refuse
        return "kustomize"
    if os.path.isfile(os.path.join(path, HELM_CHART_FILE)):
        return "helm"
    if has_jsonnet_entry_points(path):
        return "jsonnet"
    return "yaml"


class AutoRenderer(Renderer):
    """Render each folder with the renderer it needs (see the module docstring).

    ``kustomize`` and ``jsonnet`` are the keyword defaults of those renderers;
    ``context.options["kustomize"]`` / ``["jsonnet"]`` still override them per render.
    """

    name: ClassVar[str] = "auto"
    #: applies ``context.variables`` itself, before validating (``namespace: ${NS}``)
    substitutes: ClassVar[bool] = True

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        kustomize: Mapping[str, Any] | None = None,
        jsonnet: Mapping[str, Any] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.yaml = YamlRenderer(self.limits)
        self.kustomize = KustomizeRenderer(self.limits, **dict(kustomize or {}))
        self.jsonnet = JsonnetRenderer(self.limits, **dict(jsonnet or {}))

    def render(self, root: Path, context: RenderContext | None = None) -> list[Resource]:
        """The resources of ``root``, rendered by the renderer it needs, as declared."""
        kind = describe_folder(root)
        if kind == "kustomize":
            return self.kustomize.render(root, context)
        if kind == "jsonnet":
            return self.jsonnet.render(root, context)
        tree = Tree(root, context)
        if kind == "helm":
            chart = Path(tree.rel(tree.root_real), HELM_CHART_FILE).as_posix()
            raise ManifestError(
                chart.removeprefix("./"),
                "a Helm chart: Helm charts are not supported; render it to plain YAML "
                "(helm template) or use a kustomization",
            )
        variables = context.variables if context is not None else {}
        if not variables and not _has_nested_kustomization(tree.root_real):
            return self.yaml.render(root, context)  # the per-file cached path
        return self._plain(tree, context)

    def _plain(self, tree: Tree, context: RenderContext | None) -> list[Resource]:
        """Plain manifests (substituted, when there are variables), with each subfolder
        holding a kustomization built by kustomize."""
        base = tree.rel(tree.root_real)
        # the subfolders' builds may read the whole tree, not only their own folder
        inner = dataclasses.replace(context or RenderContext(), tree=tree.path)
        variables = context.variables if context is not None else {}
        budget = self.limits.max_total_bytes
        built: set[str] = set()
        known: dict[str, bool] = {}
        resources: list[Resource] = []
        for item in walk(tree.root_real):
            folder = _kustomization_folder(tree.root_real, item.relpath, known)
            if folder is not None:
                if folder not in built:
                    built.add(folder)
                    resources.extend(
                        self.kustomize.render(Path(tree.root_real, folder), inner)
                    )
                continue
            if not is_manifest_path(item.relpath):
                continue
            rel = item.relpath if base == "." else f"{base}/{item.relpath}"
            budget -= os.path.getsize(item.path)
            if budget < 0:
                raise ManifestError(rel, f"the files exceed {self.limits.max_total_bytes} bytes")
            data = read_bounded(item.path, rel, self.limits.max_file_bytes)
            documents = parse_documents(data, rel, limits=self.limits)
            resources.extend(check_substituted(documents, variables, limits=self.limits))
            if len(resources) > self.limits.max_resources:
                raise ManifestError(rel, f"more than {self.limits.max_resources} resources")
        return resources

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _kustomization_folder(root: str, relpath: str, known: dict[str, bool]) -> str | None:
    """The outermost folder above ``relpath`` (below ``root``) holding a kustomization file.

    ``known`` remembers the answer per folder across calls.
    """
    parts = relpath.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        found = known.get(folder)
        if found is None:
            found = known[folder] = any(
                os.path.isfile(os.path.join(root, folder, name)) for name in KUSTOMIZATION_FILES
            )
        if found:
            return folder
    return None


def _has_nested_kustomization(root: str) -> bool:
    """Whether a (non-hidden) subfolder of ``root`` holds a kustomization file; names only."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if folder != root and entry.name in KUSTOMIZATION_FILES and entry.is_file():
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return False
