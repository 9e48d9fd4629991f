"""Differ plugins: decide whether a live resource drifted from its desired manifest."""

from gitops.differs.base import Differ

__all__ = ["Differ"]
