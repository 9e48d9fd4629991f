"""The Differ contract as a pytest mixin: subclass :class:`DifferConformance`, add a fixture.

::

    class TestMyDiffer(DifferConformance):
        @pytest.fixture
        def differ(self):                  # required
            return MyDiffer()

        @pytest.fixture
        def provides_patches(self):        # optional; default True
            return True

Covered, under each drift mode (``subset``, ``exact``, ``managed``): identical objects
are unchanged, server-owned metadata and ``status`` are never drift, a real change is
changed, a missing live object is changed, inputs are never mutated, Secret values
(clear or base64) never appear in ``text``, ``patch`` or ``repr()``, ``EXACT`` judges
fields live has and desired does not while ``SUBSET`` does not, ``MANAGED`` judges only
the fields its field manager applied last, ignore rules are honoured, and (when the
differ provides patches) a patch applied with ``jsonpatch`` converges: the patched live
object is unchanged. Property tests (hypothesis) check the laws on random objects.

This module must never rely on one differ's output format beyond the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops.differs.base import Differ
from gitops.model import Diff, DriftMode, DriftPolicy, IgnoreDifference, Resource
from gitops.testing.conformance.common import (
    MIXIN_HEALTH_CHECKS,
    SECRET_VALUES,
    assert_no_secret_values,
    cluster_role,
    configmap,
    deep_copy,
    deployment,
    namespace_manifest,
    secret,
)

__all__ = ["DifferConformance"]

#: The field manager of the ``managed`` policy the kit uses.
MANAGER = "gitops"
POLICIES: dict[str, DriftPolicy] = {
    "subset": DriftPolicy(DriftMode.SUBSET),
    "exact": DriftPolicy(DriftMode.EXACT),
    "managed": DriftPolicy(DriftMode.MANAGED, field_manager=MANAGER),
}
#: The Secret values of a live Secret that differs from desired.
OLD_SECRET_VALUES = ("old-Pa55word-Live-1", "old-T0ken-Live-2")


def widget(name: str, spec: Any) -> dict[str, Any]:
    """A custom resource (``Widget.conformance.example.com``) with ``spec`` as given."""
    return {"apiVersion": "conformance.example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


SAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "configmap": lambda: configmap("cm", "ns", {"a": "1", "unicode": "grüße 🚀", "empty": ""}),
    "deployment": lambda: deployment("web", "ns"),
    "secret": lambda: secret("creds", "ns"),
    "namespace": lambda: namespace_manifest("ns"),
    "cluster role": lambda: cluster_role("conformance:view"),
    "custom resource": lambda: widget("w", {"size": 3, "ratio": 0.5, "on": True,
                                            "tags": ["a", "b"], "nested": {"x": {"y": "z"}}}),
}


def _resource(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest, "conformance.yaml#0")


def _with_server_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` as a server returns it: uid, resourceVersion, ... and a status."""
    live: dict[str, Any] = deep_copy(manifest)
    live["metadata"].update({
        "uid": "0f3c1d52-6a2b-4a57-9a1e-2f1d0c9b8a71",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                           "apiVersion": manifest["apiVersion"], "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:status": {}}, "subresource": "status"}],
    })
    live["status"] = {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    return live


def _changed_pairs() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """name -> (desired, live) pairs that differ in a field desired declares."""
    pairs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def pair(name: str, edit: Callable[[dict[str, Any]], None], make: Callable[[], dict[str, Any]]
             ) -> None:
        desired = make()
        live = deep_copy(desired)
        edit(live)
        pairs[name] = (desired, _with_server_fields(live))

    pair("value", lambda m: m["data"].update(a="2"), SAMPLES["configmap"])
    pair("missing key", lambda m: m["data"].pop("a"), SAMPLES["configmap"])
    pair("number", lambda m: m["spec"].update(replicas=5), SAMPLES["deployment"])
    pair("list item", lambda m: m["spec"]["template"]["spec"]["containers"][0].update(
        image="nginx:1.0"), SAMPLES["deployment"])
    pair("list length", lambda m: m["spec"]["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "metrics", "containerPort": 9090}), SAMPLES["deployment"])
    pair("scalar list", lambda m: m["rules"][0].update(verbs=["get", "list"]),
         SAMPLES["cluster role"])
    pair("nested map", lambda m: m["spec"]["nested"].pop("x"), SAMPLES["custom resource"])
    pair("type", lambda m: m["spec"].update(size="3"), SAMPLES["custom resource"])
    return pairs


CHANGED_PAIRS = _changed_pairs()

# -- random JSON-like objects for property tests ------------------------------------------

_keys = st.text(alphabet="ab/~.-_ü", min_size=1, max_size=4)
_leaves = (
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="xy ü", max_size=3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
)
_values = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=12,
)
_specs = st.dictionaries(_keys, _values, max_size=4)
_PROPERTY = settings(deadline=None, suppress_health_check=MIXIN_HEALTH_CHECKS)


class DifferConformance:
    """The Differ contract as pytest tests. Provide a ``differ`` fixture."""

    # -- fixtures a differ provides --------------------------------------------------------

    @pytest.fixture
    def differ(self) -> Differ:
        """The differ under test. Override in the differ's test class."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `differ` fixture returning the Differ "
            "under test (see gitops.testing.conformance)"
        )

    @pytest.fixture
    def provides_patches(self) -> bool:
        """Whether a changed diff carries an RFC 6902 patch (then it must converge)."""
        return True

    @pytest.fixture(params=list(POLICIES))
    def policy(self, request: pytest.FixtureRequest) -> DriftPolicy:
        return POLICIES[request.param]

    # -- unchanged -------------------------------------------------------------------------

    @pytest.mark.parametrize("sample", list(SAMPLES))
    def test_identical_objects_are_unchanged(
        self, differ: Differ, policy: DriftPolicy, sample: str
    ) -> None:
        desired = _resource(SAMPLES[sample]())
        diff = differ.diff(desired, _resource(SAMPLES[sample]()), policy)
        _check_shape(diff)
        assert not diff.changed, f"equal objects differ under {policy.mode.value}:\n{diff.text}"
        assert not differ.diff(desired, desired, policy).changed, "an object differs from itself"

    @pytest.mark.parametrize("sample", list(SAMPLES))
    def test_server_fields_and_status_are_not_drift(
        self, differ: Differ, policy: DriftPolicy, sample: str
    ) -> None:
        manifest = SAMPLES[sample]()
        diff = differ.diff(_resource(manifest), _resource(_with_server_fields(manifest)), policy)
        assert not diff.changed, (
            f"uid, resourceVersion, generation, creationTimestamp, managedFields or status "
            f"counted as drift under {policy.mode.value}:\n{diff.text}"
        )

    # -- changed ---------------------------------------------------------------------------

    @pytest.mark.parametrize("sample", list(SAMPLES))
    def test_a_missing_live_object_is_changed(
        self, differ: Differ, policy: DriftPolicy, sample: str
    ) -> None:
        diff = differ.diff(_resource(SAMPLES[sample]()), None, policy)
        _check_shape(diff)
        assert diff.changed, "a desired object with no live counterpart must be changed"

    @pytest.mark.parametrize("case", list(CHANGED_PAIRS))
    def test_a_real_change_is_changed(
        self, differ: Differ, policy: DriftPolicy, provides_patches: bool, case: str
    ) -> None:
        desired, live = CHANGED_PAIRS[case]
        diff = differ.diff(_resource(desired), _resource(live), policy)
        _check_shape(diff)
        assert diff.changed, f"a change ({case}) was not seen under {policy.mode.value}"
        assert diff.text, "a changed diff must explain itself in text"
        if provides_patches:
            assert diff.patch, "a changed diff carries no patch"

    # -- purity ----------------------------------------------------------------------------

    @pytest.mark.parametrize("case", [*CHANGED_PAIRS, "identical", "live extra", "absent"])
    def test_never_mutates_its_inputs(self, differ: Differ, policy: DriftPolicy, case: str) -> None:
        desired, live = _pair(case)
        before = deep_copy((desired, live))
        differ.diff(_resource(desired), None if live is None else _resource(live), policy)
        assert (desired, live) == before, "diff() mutated its inputs"

    # -- secrets ---------------------------------------------------------------------------

    @pytest.mark.parametrize("case", ["absent", "identical", "changed", "live extra",
                                      "last-applied"])
    def test_secret_values_are_never_shown(
        self, differ: Differ, policy: DriftPolicy, case: str
    ) -> None:
        desired = secret("creds", "ns")
        live: dict[str, Any] | None = _with_server_fields(secret("creds", "ns"))
        if case == "absent":
            live = None
        elif case == "changed":
            live = _with_server_fields(secret("creds", "ns", OLD_SECRET_VALUES))
        elif case == "live extra":
            live = _with_server_fields(secret("creds", "ns", (*SECRET_VALUES, *OLD_SECRET_VALUES)))
        elif case == "last-applied":
            assert live is not None
            live["metadata"]["annotations"] = {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                    secret("creds", "ns", OLD_SECRET_VALUES))}
        diff = differ.diff(_resource(desired), None if live is None else _resource(live), policy)
        values = (*SECRET_VALUES, *OLD_SECRET_VALUES)
        assert_no_secret_values(diff.text, "the diff text", values)
        assert_no_secret_values(json.dumps(list(diff.patch)), "the patch", values)
        assert_no_secret_values(repr(diff), "repr() of the diff", values)
        if case == "changed":
            assert diff.changed, "a changed Secret value was not seen"

    # -- drift modes -----------------------------------------------------------------------

    def test_exact_judges_live_only_fields_and_subset_does_not(
        self, differ: Differ, provides_patches: bool
    ) -> None:
        desired = configmap("cm", "ns", {"a": "1"})
        live = _with_server_fields(desired)
        live["data"]["added-by-hand"] = "x"
        live["metadata"]["labels"]["added"] = "by-hand"
        pair = (_resource(desired), _resource(live))
        assert not differ.diff(*pair, POLICIES["subset"]).changed, (
            "under SUBSET, fields only live has are not drift"
        )
        assert not differ.diff(*pair, POLICIES["managed"]).changed, (
            "under MANAGED, fields no manager applied are not drift"
        )
        exact = differ.diff(*pair, POLICIES["exact"])
        assert exact.changed, "under EXACT, fields only live has are drift"
        if provides_patches:
            patched = _patched(live, exact)
            assert "added-by-hand" not in patched["data"], "the EXACT patch keeps a live-only field"
            assert "added" not in patched["metadata"]["labels"]

    def test_managed_judges_only_what_its_field_manager_applied(
        self, differ: Differ, provides_patches: bool
    ) -> None:
        desired = configmap("cm", "ns", {"kept": "1"})
        live = _with_server_fields(desired)
        live["data"].update({"dropped": "from the source", "theirs": "another writer's"})
        live["metadata"]["managedFields"] += [
            {"manager": MANAGER, "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:kept": {}, "f:dropped": {}},
                          "f:metadata": {"f:labels": {"f:app": {}}}}},
            {"manager": "someone-else", "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:theirs": {}}}},
        ]
        pair = (_resource(desired), _resource(live))
        ours = differ.diff(*pair, POLICIES["managed"])
        assert ours.changed, "a field the manager applied and desired dropped must be drift"
        theirs = differ.diff(*pair, DriftPolicy(DriftMode.MANAGED, field_manager="nobody"))
        assert not theirs.changed, "fields another manager applied are not drift"
        if provides_patches:
            patched = _patched(live, ours)
            assert "dropped" not in patched["data"], "the patch keeps the dropped field"
            assert patched["data"].get("theirs") == "another writer's", (
                "the patch removes a field another manager owns"
            )
            assert not differ.diff(pair[0], _resource(patched), POLICIES["managed"]).changed

    def test_ignore_rules_are_honoured(self, differ: Differ, policy: DriftPolicy) -> None:
        desired = configmap("cm", "ns", {"a": "1", "replicas": "desired"})
        live = _with_server_fields(configmap("cm", "ns", {"a": "1", "replicas": "live"}))
        rule = IgnoreDifference(kind="ConfigMap", json_pointers=("/data/replicas",))
        other = IgnoreDifference(kind="Secret", json_pointers=("/data/replicas",))
        pair = (_resource(desired), _resource(live))
        ignoring = DriftPolicy(policy.mode, policy.field_manager, policy.list_types, (rule,))
        assert not differ.diff(*pair, ignoring).changed, "an ignored field counted as drift"
        elsewhere = DriftPolicy(policy.mode, policy.field_manager, policy.list_types, (other,))
        assert differ.diff(*pair, elsewhere).changed, "a rule for another kind was applied"
        live["data"]["a"] = "2"
        diff = differ.diff(_resource(desired), _resource(live), ignoring)
        assert diff.changed, "an ignore rule hid a change to another field"
        assert all(op.get("path") != "/data/replicas" for op in diff.patch), (
            "the patch overwrites an ignored field"
        )

    # -- patches ---------------------------------------------------------------------------

    @pytest.mark.parametrize("case", [*CHANGED_PAIRS, "live extra"])
    def test_the_patch_converges(
        self, differ: Differ, policy: DriftPolicy, provides_patches: bool, case: str
    ) -> None:
        if not provides_patches:
            pytest.skip("differ declares it provides no patches")
        desired, live = _pair(case)
        assert live is not None
        diff = differ.diff(_resource(desired), _resource(live), policy)
        if not diff.changed:
            return  # "live extra" under SUBSET/MANAGED: nothing to converge
        patched = _patched(live, diff)
        after = differ.diff(_resource(desired), _resource(patched), policy)
        assert not after.changed, f"the patch does not converge ({case}):\n{after.text}"

    # -- properties ------------------------------------------------------------------------

    @_PROPERTY
    @given(spec=_specs)
    def test_any_object_is_unchanged_against_a_copy_of_itself(
        self, differ: Differ, spec: dict[str, Any]
    ) -> None:
        manifest = widget("w", spec)
        for policy in POLICIES.values():
            diff = differ.diff(_resource(manifest), _resource(deep_copy(manifest)), policy)
            assert not diff.changed, f"{policy.mode.value}: equal objects differ:\n{diff.text}"

    @_PROPERTY
    @given(desired=_specs, live=_specs)
    def test_any_patch_converges_and_inputs_stay_as_they_were(
        self, differ: Differ, provides_patches: bool, desired: dict[str, Any],
        live: dict[str, Any],
    ) -> None:
        want, have = widget("w", desired), widget("w", live)
        before = deep_copy((want, have))
        for policy in POLICIES.values():
            diff = differ.diff(_resource(want), _resource(have), policy)
            assert (want, have) == before, "diff() mutated its inputs"
            if diff.changed and provides_patches:
                patched = _patched(have, diff)
                after = differ.diff(_resource(want), _resource(patched), policy)
                assert not after.changed, (
                    f"{policy.mode.value}: patch {list(diff.patch)} does not converge:\n"
                    f"{after.text}"
                )


def _pair(case: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A named (desired, live) pair: a changed pair, or ``identical``/``live extra``/``absent``."""
    if case in CHANGED_PAIRS:
        desired, live = CHANGED_PAIRS[case]
        return deep_copy(desired), deep_copy(live)
    desired = SAMPLES["deployment"]()
    if case == "absent":
        return desired, None
    live = _with_server_fields(desired)
    if case == "live extra":
        live["spec"]["paused"] = False
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    return desired, live


def _patched(live: dict[str, Any], diff: Diff) -> dict[str, Any]:
    """``live`` with the diff's patch applied (RFC 6902, by jsonpatch)."""
    try:
        patched: dict[str, Any] = jsonpatch.apply_patch(live, list(diff.patch))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise AssertionError(f"the patch does not apply to live: {exc}") from exc
    return patched


def _check_shape(diff: Diff) -> None:
    assert isinstance(diff, Diff), f"diff() returned {type(diff).__name__}, not a Diff"
    assert isinstance(diff.changed, bool) and isinstance(diff.text, str)
    for op in diff.patch:
        assert isinstance(op, dict) and "op" in op and "path" in op, f"not an RFC 6902 op: {op}"

