"""The default renderer: plain YAML and JSON manifests, read as they are.

A thin plugin over :func:`gitops.manifests.load_tree`; it never runs a tool, templates
nothing and writes nowhere.
"""

from __future__ import annotations

from pathlib import Path

from gitops.manifests import DEFAULT_LIMITS, IsNamespaced, Limits, load_tree
from gitops.model import Resource
from gitops.renderers.base import Renderer

__all__ = ["YamlRenderer"]


class YamlRenderer(Renderer):
    """Every ``.yaml``/``.yml``/``.json`` file under the root, validated.

    ``default_namespace`` goes to namespaced resources that name none;
    ``is_namespaced(group, kind)`` (e.g. backed by a target's discovery) settles the
    scope of kinds gitops does not know; ``limits`` bounds what one render may read.
    """

    name = "yaml"

    def __init__(
        self,
        default_namespace: str = "default",
        limits: Limits | None = None,
        is_namespaced: IsNamespaced | None = None,
    ) -> None:
        self.default_namespace = default_namespace
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.is_namespaced = is_namespaced

    def render(self, root: Path) -> list[Resource]:
        """The resources under ``root``; raises ManifestError naming the file at fault."""
        return load_tree(
            root,
            default_namespace=self.default_namespace,
            limits=self.limits,
            is_namespaced=self.is_namespaced,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(default_namespace={self.default_namespace!r})"
