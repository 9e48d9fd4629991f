"""The default renderer: plain YAML and JSON manifests, read as they are.

A thin plugin over :func:`gitops.manifests.render_tree`; it never runs a tool, templates
nothing and writes nowhere. It keeps a content-addressed cache of the files it parsed
last, so a commit that touches one file of a thousand re-parses one file.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gitops.manifests import DEFAULT_LIMITS, FileCache, Limits, render_tree
from gitops.model import RenderContext, Resource
from gitops.renderers.base import Renderer

__all__ = ["YamlRenderer"]


class YamlRenderer(Renderer):
    """Every ``.yaml``/``.yml``/``.json`` file under the root, validated, as declared.

    ``limits`` bounds what one render may read. Parsed files are cached by path and
    content digest (never by time); the cache holds the last rendered tree only.
    """

    name = "yaml"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self._cache: FileCache = {}
        self._lock = threading.Lock()

    def render(self, root: Path, context: RenderContext | None = None) -> list[Resource]:
        """The resources under ``root``; raises ManifestError naming the file at fault."""
        with self._lock:
            return render_tree(root, limits=self.limits, cache=self._cache)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
