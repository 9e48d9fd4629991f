"""Fault injection rules for tests: a re-export of :mod:`gitops.targets.faults`.

The rules live in the product (the ``mock:`` target reads them from its URL), so that
product code never imports a test kit; this module keeps ``gitops.testing.faults``
imports working.
"""

from __future__ import annotations

from gitops.targets.faults import *  # noqa: F403
from gitops.targets.faults import __all__ as __all__
