"""Fleets: ``ApplicationSet`` documents that generate Applications from parameters.

:mod:`gitops.appsets.spec` is the document, :mod:`gitops.appsets.template` fills
``{{param}}`` placeholders, :mod:`gitops.appsets.generators` are the built-in generator
plugins (entry-point group ``gitops.generators``) and :mod:`gitops.appsets.generate`
turns a set into its Applications. Importing this package opens nothing.
"""

from __future__ import annotations

from gitops.appsets.spec import ApplicationSet

__all__ = ["ApplicationSet"]
