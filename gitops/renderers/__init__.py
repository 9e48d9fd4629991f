"""Renderer plugins: turn an artifact tree into resources.

Built in: ``yaml`` (plain manifests), ``kustomize``, ``jsonnet`` and ``auto`` (the one a
folder needs, see :func:`describe_folder`); :func:`substitute` applies Flux-style
``${VAR}`` substitution to rendered resources.
"""

from typing import TYPE_CHECKING

from gitops.renderers.base import Renderer

if TYPE_CHECKING:
    from gitops.renderers.auto import describe_folder
    from gitops.renderers.substitute import substitute

__all__ = ["Renderer", "describe_folder", "substitute"]


def __getattr__(name: str) -> object:
    # Lazy: importing the package must not import every renderer (jsonnet is a C extension).
    if name == "describe_folder":
        from gitops.renderers.auto import describe_folder

        return describe_folder
    if name == "substitute":
        from gitops.renderers.substitute import substitute

        return substitute
    raise AttributeError(name)
