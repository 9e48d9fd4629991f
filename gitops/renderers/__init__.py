"""Renderer plugins: turn an artifact tree into resources (plain YAML, kustomize...)."""

from gitops.renderers.base import Renderer

__all__ = ["Renderer"]
