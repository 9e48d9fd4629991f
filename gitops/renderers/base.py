"""The Renderer contract: turn a fetched artifact tree into resources.

The default renderer reads plain YAML/JSON manifests; others (kustomize, ...) plug in
through the ``gitops.renderers`` entry-point group. A renderer validates what it
returns (see :mod:`gitops.manifests`) and never writes anywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from gitops.model import RenderContext, Resource

__all__ = ["Renderer"]


class Renderer(ABC):
    """Base class of every renderer plugin. Required: :meth:`render`."""

    #: Registry name (the entry-point name).
    name: ClassVar[str] = ""
    #: applies ``context.variables`` itself (before validating); otherwise the engine
    #: substitutes the rendered resources (:func:`gitops.renderers.substitute.substitute`)
    substitutes: ClassVar[bool] = False

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Whether the plugin can run on this machine, and if not, why."""
        return True, ""

    @abstractmethod
    def render(self, root: Path, context: RenderContext) -> list[Resource]:
        """Return the validated resources found under ``root``, not yet placed.

        A pure function of the content under ``context.tree`` (``root`` when None) and
        ``context``: the engine caches it by both. Each resource's key holds the
        namespace its manifest declares (``""`` for none): scope and the default
        namespace are the engine's to apply afterwards
        (:func:`gitops.manifests.place`), because they depend on the target. Never reads
        outside ``context.tree`` and never writes. Raises
        :class:`~gitops.errors.ManifestError` naming the file at fault.
        """
