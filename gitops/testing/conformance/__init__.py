"""Conformance kits for the four plugin contracts: subclass one, add its fixtures, run pytest.

=========================  ======================================  =========================
mixin                      required fixtures                        module
=========================  ======================================  =========================
:class:`SourceConformance`    ``make_source``, ``update_source``     :mod:`.source`
:class:`TargetConformance`    ``target`` (optional ``reopen``)       :mod:`.target`
:class:`DifferConformance`    ``differ``                             :mod:`.differ`
:class:`RendererConformance`  ``renderer``, ``manifest_files``       :mod:`.renderer`
=========================  ======================================  =========================

A plugin author runs them from the plugin's own tests::

    # tests/test_conformance.py of a plugin
    import pytest
    from gitops.testing.conformance import TargetConformance

    from my_plugin import MyTarget


    class TestMyTarget(TargetConformance):
        @pytest.fixture
        def target(self, tmp_path):
            return MyTarget.from_url(f"my:{tmp_path}")  # fresh and empty

The mixins have no ``Test`` prefix, so pytest never collects them on their own; a
required fixture the subclass does not define fails with a message naming it; optional
fixtures skip the tests that need them; capability fixtures (``supports_dry_run``,
``supports_watch``, ``lock_behaviour``, ``provides_patches``...) read what the plugin
declares and may be overridden. To skip or expect a failure of one inherited test,
override it in the subclass (e.g. with ``pytest.mark.xfail``). pytest rewrites asserts
only in test modules; the messages here say what failed either way, or call
``pytest.register_assert_rewrite("gitops.testing.conformance")`` in your conftest.py.

The kits need pytest and hypothesis (``pip install gitops-sdk[test]``); nothing in the
product imports them.
"""

from __future__ import annotations

from gitops.testing.conformance.common import (
    UNICODE_TEXT,
    assert_contains,
    cluster_role,
    configmap,
    deployment,
    key_of,
    long_name,
    namespace_manifest,
    plain_yaml_files,
    secret,
    service,
)
from gitops.testing.conformance.differ import DifferConformance
from gitops.testing.conformance.renderer import RendererConformance, write_files
from gitops.testing.conformance.source import SourceConformance
from gitops.testing.conformance.target import LockBehaviour, TargetConformance

__all__ = [
    "UNICODE_TEXT",
    "DifferConformance",
    "LockBehaviour",
    "RendererConformance",
    "SourceConformance",
    "TargetConformance",
    "assert_contains",
    "cluster_role",
    "configmap",
    "deployment",
    "key_of",
    "long_name",
    "namespace_manifest",
    "plain_yaml_files",
    "secret",
    "service",
    "write_files",
]
