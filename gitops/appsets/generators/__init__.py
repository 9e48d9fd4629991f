"""The built-in ApplicationSet generators (``list``, ``git``, ``clusters``, ``matrix``, ``merge``).

Each is a :class:`~gitops.appsets.generators.base.Generator` registered in the
entry-point group ``gitops.generators``; importing this package imports only the contract.
"""

from __future__ import annotations

from gitops.appsets.generators.base import (
    Generator,
    GeneratorCache,
    GeneratorContext,
    ParameterSet,
)

__all__ = ["Generator", "GeneratorCache", "GeneratorContext", "ParameterSet"]
