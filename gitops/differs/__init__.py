"""Differ plugins: decide whether a live resource drifted from its desired manifest.

Besides the :class:`Differ` contract, the structural differ's companions an engine or a
CLI calls: :func:`explain` (why each difference is not drift) with its text and JSON
forms, :func:`respect_ignored` (what to apply so ignored fields stay as they are live),
:func:`load_ignore_differences` (Argo CD ``ignoreDifferences`` YAML), and
:func:`builtin_list_types` (Kubernetes 1.32's keyed lists). See docs/diff.md.
"""

from gitops.differs.base import Differ
from gitops.differs.explain import Explanation, Reason, explanations_json, render_explanations
from gitops.differs.ignore import load_ignore_differences, respect_ignored, validate_rules
from gitops.differs.lists import ChainListTypes, SchemaListTypes, builtin_list_types
from gitops.differs.structural import StructuralDiffer, explain

__all__ = [
    "ChainListTypes",
    "Differ",
    "Explanation",
    "Reason",
    "SchemaListTypes",
    "StructuralDiffer",
    "builtin_list_types",
    "explain",
    "explanations_json",
    "load_ignore_differences",
    "render_explanations",
    "respect_ignored",
    "validate_rules",
]
