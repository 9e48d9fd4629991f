"""The structural differ: what is drift, what is not, and the patch and text it reports."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from differ_support import server_apply, server_update
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.managed import applied_fields, removed_fields
from gitops.differs.normalize import QUANTITY_KEYS, QUANTITY_PARENT_KEYS, strip_ignored
from gitops.differs.structural import StructuralDiffer
from gitops.masking import LAST_APPLIED_ANNOTATION
from gitops.model import Diff, DriftMode, DriftPolicy, Resource
from gitops.plugins import open_differ
from gitops.quantity import canonical_quantity

DIFFER = StructuralDiffer()


def res(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest)


def diff(desired: dict[str, Any], live: dict[str, Any] | None) -> Diff:
    return DIFFER.diff(res(desired), None if live is None else res(live))


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "prod",
            "labels": {"app.kubernetes.io/name": "web"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "web:1.0",
                            "env": [{"name": "WORKERS", "value": "1"}],
                            "ports": [{"containerPort": 8080}],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "1", "memory": "2Gi"},
                            },
                        }
                    ]
                },
            },
        },
    }


def as_served(desired: dict[str, Any]) -> dict[str, Any]:
    """What an API server returns for ``desired``: server fields and defaults added."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        uid="0b5b6f1c",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2024-05-01T10:00:00Z",
        selfLink="/apis/apps/v1/namespaces/prod/deployments/web",
        managedFields=[{"manager": "gitops", "operation": "Apply"}],
        annotations={
            LAST_APPLIED_ANNOTATION: '{"apiVersion":"apps/v1"}',
            "deployment.kubernetes.io/revision": "3",
        },
    )
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    pod = live["spec"]["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", securityContext={})
    container = pod["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    container["ports"][0]["protocol"] = "TCP"
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    return live


def container(manifest: dict[str, Any], index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][index]
    return found


def assert_patch_converges(desired: dict[str, Any], live: dict[str, Any]) -> None:
    result = diff(desired, live)
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not diff(desired, patched).changed, result.patch


# -- unchanged -----------------------------------------------------------------------------


def test_served_object_is_in_sync() -> None:
    desired = deployment()
    result = diff(desired, as_served(desired))
    assert not result.changed
    assert result.patch == ()
    assert result.text == ""


def test_identical_object_is_in_sync() -> None:
    desired = deployment()
    assert not diff(desired, desired).changed
    assert not diff(desired, copy.deepcopy(desired)).changed


@pytest.mark.parametrize(
    ("path", "desired_value", "live_value"),
    [
        (("status",), {"replicas": 9}, {"replicas": 2}),
        (("metadata", "uid"), "mine", "theirs"),
        (("metadata", "resourceVersion"), "1", "2"),
        (("metadata", "managedFields"), [], [{"manager": "x"}]),
        (("metadata", "creationTimestamp"), None, "2024-05-01T10:00:00Z"),
        (("metadata", "generation"), 1, 7),
        (("metadata", "selfLink"), "/a", "/b"),
        (("metadata", "deletionTimestamp"), None, "2024-05-01T10:00:00Z"),
        (("metadata", "deletionGracePeriodSeconds"), 0, 30),
        (("metadata", "annotations", LAST_APPLIED_ANNOTATION), "{}", '{"kind":"Deployment"}'),
    ],
)
def test_server_owned_fields_are_ignored(
    path: tuple[str, ...], desired_value: Any, live_value: Any
) -> None:
    desired, live = deployment(), as_served(deployment())
    for manifest, value in ((desired, desired_value), (live, live_value)):
        parent = manifest
        for name in path[:-1]:
            parent = parent.setdefault(name, {})
        parent[path[-1]] = value
    assert not diff(desired, live).changed


def test_fields_absent_from_desired_are_not_drift() -> None:
    desired = deployment()
    live = as_served(desired)
    live["metadata"]["labels"]["added-by"] = "someone-else"
    live["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    container(live)["env"][0]["valueFrom"] = None
    assert not diff(desired, live).changed


@pytest.mark.parametrize("empty", [None, {}, []])
def test_empty_desired_value_matches_an_absent_field(empty: Any) -> None:
    desired, live = deployment(), as_served(deployment())
    container(desired)["args"] = empty
    desired["spec"]["template"]["spec"]["tolerations"] = empty
    live["spec"]["template"]["spec"]["tolerations"] = None
    assert not diff(desired, live).changed


def test_int_and_float_are_equal() -> None:
    desired = deployment()
    live = as_served(desired)
    live["spec"]["replicas"] = 2.0
    assert not diff(desired, live).changed


@pytest.mark.parametrize(
    ("field", "desired_value", "live_value"),
    [
        ("cpu", "500m", "0.5"),
        ("cpu", "0.1", "100m"),
        ("cpu", "2", 2),
        ("cpu", 0.5, "500m"),
        ("memory", "1Gi", "1024Mi"),
        ("memory", "1000M", "1G"),
        ("ephemeral-storage", "1e3", "1k"),
    ],
)
def test_quantities_compare_by_value(field: str, desired_value: Any, live_value: Any) -> None:
    desired, live = deployment(), as_served(deployment())
    container(desired)["resources"]["limits"][field] = desired_value
    container(live)["resources"]["limits"][field] = live_value
    container(desired)["resources"]["requests"][field] = live_value
    container(live)["resources"]["requests"][field] = desired_value
    assert not diff(desired, live).changed


@pytest.mark.parametrize(
    ("spec_desired", "spec_live"),
    [
        ({"hard": {"requests.cpu": "1"}}, {"hard": {"requests.cpu": "1000m"}}),  # ResourceQuota
        (
            {"limits": [{"type": "Container", "max": {"cpu": "2"}, "default": {"memory": "1Gi"}}]},
            {
                "limits": [
                    {"type": "Container", "max": {"cpu": "2000m"}, "default": {"memory": "1024Mi"}}
                ]
            },
        ),  # LimitRange
        (
            {"resources": {"requests": {"storage": "1Gi"}}},
            {"resources": {"requests": {"storage": "1073741824"}}},
        ),
        (
            {"volume": {"emptyDir": {"sizeLimit": "1Gi"}}},
            {"volume": {"emptyDir": {"sizeLimit": "1024Mi"}}},
        ),
        ({"storage": "10Gi"}, {"storage": "10240Mi"}),
        ({"overhead": {"cpu": "250m"}}, {"overhead": {"cpu": "0.25"}}),
    ],
)
def test_quantity_positions(spec_desired: dict[str, Any], spec_live: dict[str, Any]) -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec_desired,
    }
    live = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec_live}
    assert not diff(desired, live).changed


# -- drift ---------------------------------------------------------------------------------


def _drift_changed_image(m: dict[str, Any]) -> None:
    container(m)["image"] = "web:2.0"


def _drift_removed_container(m: dict[str, Any]) -> None:
    m["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "proxy"})


def _drift_env_value(m: dict[str, Any]) -> None:
    container(m)["env"][0]["value"] = "1.0"


def _drift_label(m: dict[str, Any]) -> None:
    m["metadata"]["labels"]["app.kubernetes.io/name"] = "api"


def _drift_new_label(m: dict[str, Any]) -> None:
    del m["metadata"]["labels"]["app.kubernetes.io/name"]


def _drift_list_length(m: dict[str, Any]) -> None:
    container(m)["env"] = []


def _drift_cpu(m: dict[str, Any]) -> None:
    container(m)["resources"]["limits"]["cpu"] = "1001m"


def _drift_type(m: dict[str, Any]) -> None:
    m["spec"]["replicas"] = "2"


def _drift_live_null(m: dict[str, Any]) -> None:
    m["spec"]["selector"] = None


@pytest.mark.parametrize(
    "change",
    [
        _drift_changed_image,
        _drift_removed_container,
        _drift_env_value,
        _drift_label,
        _drift_new_label,
        _drift_list_length,
        _drift_cpu,
        _drift_type,
        _drift_live_null,
    ],
)
def test_drift_is_reported(change: Any) -> None:
    desired = deployment()
    live = as_served(desired)
    change(live)
    result = diff(desired, live)
    assert result.changed
    assert result.patch
    assert result.text
    assert_patch_converges(desired, live)


@pytest.mark.parametrize(
    ("desired_value", "live_value"), [(True, 1), (False, 0), (1, True), (0.0, False)]
)
def test_bool_is_not_a_number(desired_value: Any, live_value: Any) -> None:
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "spec": {"a": desired_value, "b": [desired_value]},
    }
    live = copy.deepcopy(desired)
    live["spec"]["a"] = live_value
    assert diff(desired, live).changed
    live = copy.deepcopy(desired)
    live["spec"]["b"] = [live_value]
    assert diff(desired, live).changed
    live = copy.deepcopy(desired)
    live["spec"] = {"a": live_value, "b": [desired_value]}
    desired["spec"]["limits"] = {"cpu": desired_value}
    live["spec"]["limits"] = {"cpu": live_value}
    assert diff(desired, live).changed  # not even at a quantity position


def test_quantity_rule_only_at_quantity_positions() -> None:
    desired = deployment()
    desired["metadata"]["labels"]["size"] = "500m"
    live = as_served(desired)
    live["metadata"]["labels"]["size"] = "0.5"
    assert diff(desired, live).changed


def test_desired_null_declares_nothing() -> None:
    desired = deployment()
    desired["spec"]["strategy"] = None
    desired["metadata"]["annotations"] = None  # "annotations:" left empty by a template
    assert not diff(desired, as_served(deployment())).changed


# -- patch and text ----------------------------------------------------------------------


def test_patch_adds_and_replaces_only_declared_fields() -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {"a/b~c": "x"}
    live = as_served(deployment())
    live["metadata"]["labels"]["app.kubernetes.io/name"] = "api"
    container(live)["image"] = "web:0.9"
    live["spec"]["paused"] = True
    result = diff(desired, live)
    assert result.patch == (
        {"op": "replace", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
        {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "x"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:1.0"},
    )
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert patched["spec"]["paused"] is True  # live-only fields stay
    assert patched["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert not diff(desired, patched).changed


def test_patch_replaces_lists_of_another_length_whole() -> None:
    desired = deployment()
    live = as_served(desired)
    _drift_removed_container(live)
    result = diff(desired, live)
    assert [op["path"] for op in result.patch] == ["/spec/template/spec/containers"]
    assert result.patch[0]["value"] == desired["spec"]["template"]["spec"]["containers"]


def test_patch_values_do_not_alias_desired() -> None:
    desired = deployment()
    live = as_served(desired)
    _drift_removed_container(live)
    result = diff(desired, live)
    result.patch[0]["value"][0]["image"] = "mutated"
    assert container(desired)["image"] == "web:1.0"


def test_text_is_a_unified_diff_of_declared_fields() -> None:
    desired = deployment()
    live = as_served(desired)
    container(live)["image"] = "web:0.9"
    container(live)["resources"]["limits"]["cpu"] = "1000m"  # equal: not shown
    text = diff(desired, live).text
    assert text.startswith(
        "--- live/Deployment.apps/prod/web\n+++ desired/Deployment.apps/prod/web\n"
    )
    changed = [line for line in text.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-        image: web:0.9", "+        image: web:1.0"]
    for hidden in (
        "imagePullPolicy",
        "status",
        "uid",
        "managedFields",
        LAST_APPLIED_ANNOTATION,
        "1000m",
    ):
        assert hidden not in text


def test_missing_live_object() -> None:
    result = diff(deployment(), None)
    assert result.changed
    assert result.patch == ()
    lines = result.text.splitlines()
    assert lines[:2] == [
        "--- live/Deployment.apps/prod/web",
        "+++ desired/Deployment.apps/prod/web",
    ]
    assert "+        image: web:1.0" in lines
    assert not any(line.startswith("-") for line in lines[2:])


@pytest.mark.parametrize("drift", [True, False])
@pytest.mark.parametrize("live_exists", [True, False])
def test_inputs_are_never_mutated(drift: bool, live_exists: bool) -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: "{}", "keep": "me"}
    desired["status"] = {"x": 1}
    live = as_served(desired)
    if drift:
        _drift_removed_container(live)
        _drift_label(live)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"a": "b"},
    }
    secret_live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "Yw=="},
    }
    for want, have in ((desired, live), (secret, secret_live)):
        before = copy.deepcopy((want, have))
        diff(want, have if live_exists else None)
        assert (want, have) == before


def test_registered_as_structural() -> None:
    assert isinstance(open_differ("structural"), StructuralDiffer)
    assert StructuralDiffer.name == "structural"


# -- properties ----------------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(
        [
            "spec",
            "limits",
            "requests",
            "cpu",
            "storage",
            "max",
            "a/b",
            "x~y",
            "~1",
            "-",
            "0",
            "status",
            "uid",
            "name",
        ]
    ),
    st.text(max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["500m", "0.5", "1Gi", "1024Mi", "1", "1.0", "2", "", "x"]),
    st.text(max_size=5),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
METADATA = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b"])},
    optional={
        "namespace": st.sampled_from(["", "ns"]),
        "labels": st.dictionaries(
            st.sampled_from(["app", "app.kubernetes.io/name"]), st.text(max_size=3), max_size=2
        ),
        "annotations": st.dictionaries(
            st.sampled_from(["a", LAST_APPLIED_ANNOTATION, "x/y"]), st.text(max_size=3), max_size=2
        ),
        "uid": st.text(max_size=3),
        "resourceVersion": st.text(max_size=3),
    },
)


@st.composite
def manifests(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("ConfigMap", "Deployment", "Widget")
) -> dict[str, Any]:
    body = draw(st.dictionaries(KEYS, VALUES, max_size=4))
    body.update(
        apiVersion=draw(st.sampled_from(["v1", "apps/v1", "example.com/v1"])),
        kind=draw(st.sampled_from(kinds)),
        metadata=draw(METADATA),
    )
    return body


@given(manifests())
def test_property_identical_is_unchanged(manifest: dict[str, Any]) -> None:
    assert not diff(manifest, manifest).changed
    assert not diff(manifest, copy.deepcopy(manifest)).changed


@given(manifests(), manifests())
def test_property_patch_converges(desired: dict[str, Any], live: dict[str, Any]) -> None:
    before = copy.deepcopy((desired, live))
    result = diff(desired, live)
    assert (desired, live) == before
    assert all(op["op"] in ("add", "replace") for op in result.patch)
    assert bool(result.text) == result.changed
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not diff(desired, patched).changed, result.patch


@st.composite
def with_extras(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with random fields added to its mappings (never replacing one)."""
    if isinstance(value, list):
        return [draw(with_extras(item)) for item in value]
    if not isinstance(value, dict):
        return value
    grown = {key: draw(with_extras(item)) for key, item in value.items()}
    for key, item in draw(st.dictionaries(KEYS, VALUES, max_size=2)).items():
        grown.setdefault(key, item)
    return grown


@given(st.data(), manifests())
def test_property_live_only_fields_are_not_drift(
    data: st.DataObject, desired: dict[str, Any]
) -> None:
    live = data.draw(with_extras(desired))
    live["status"] = data.draw(VALUES)
    live["metadata"]["uid"] = "server-assigned"
    live["metadata"]["managedFields"] = data.draw(VALUES)
    assert not diff(desired, live).changed


# -- exact mode (file tree, in-memory target) ----------------------------------------------

EXACT = DriftPolicy(DriftMode.EXACT)


def exact(desired: dict[str, Any], live: dict[str, Any] | None) -> Diff:
    return DIFFER.diff(res(desired), None if live is None else res(live), EXACT)


def as_stored(desired: dict[str, Any]) -> dict[str, Any]:
    """What an exact target holds for ``desired``: server-owned fields added, no defaults."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        uid="0b5b6f1c",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2024-05-01T10:00:00Z",
        managedFields=[{"manager": "someone", "operation": "Update"}],
    )
    live["metadata"].setdefault("annotations", {})[LAST_APPLIED_ANNOTATION] = "{}"
    live["status"] = {"replicas": 2}
    return live


def configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "prod", "labels": {"app": "web", "tier": "1"}},
        "data": {"a": "1", "b": "2", "c": "3"},
    }


def assert_exact_patch_converges(desired: dict[str, Any], live: dict[str, Any]) -> None:
    result = exact(desired, live)
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not exact(desired, patched).changed, result.patch


def test_exact_stored_object_is_in_sync() -> None:
    for desired in (deployment(), configmap()):
        result = exact(desired, as_stored(desired))
        assert result == Diff(changed=False)


def test_exact_removed_fields_are_drift_and_the_patch_removes_them() -> None:
    live = as_stored(configmap())
    desired = configmap()
    del desired["data"]["b"]
    del desired["metadata"]["labels"]["tier"]
    result = exact(desired, live)
    assert result.changed
    assert result.patch == (
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "remove", "path": "/data/b"},
    )
    changed = [line for line in result.text.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-    tier: '1'", "-  b: '2'"]  # shown where live has them
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert patched["data"] == {"a": "1", "c": "3"}
    assert patched["metadata"]["uid"] == "0b5b6f1c"  # server fields are left alone
    assert not exact(desired, patched).changed


def test_exact_fields_added_by_hand_and_defaults_are_drift() -> None:
    desired = deployment()
    live = as_stored(desired)
    live["metadata"]["labels"]["added-by"] = "hand"
    assert exact(desired, live).changed
    assert_exact_patch_converges(desired, live)
    assert exact(desired, as_served(desired)).changed  # exact targets do not default
    assert_exact_patch_converges(desired, as_served(desired))
    assert not diff(desired, as_served(desired)).changed  # the subset rule does not care


def test_exact_whole_sections_and_nulls() -> None:
    desired = configmap()
    live = as_stored(desired)
    del desired["data"]
    desired["metadata"]["labels"] = None  # declares "no labels" in exact mode
    result = exact(desired, live)
    assert {op["path"]: op["op"] for op in result.patch} == {
        "/metadata/labels": "remove",
        "/data": "remove",
    }
    assert_exact_patch_converges(desired, live)
    desired["data"] = {}
    assert {"op": "replace", "path": "/data", "value": {}} in exact(desired, live).patch
    assert_exact_patch_converges(desired, live)


@pytest.mark.parametrize("empty", [None, {}, []])
def test_exact_empty_matches_absent_both_ways(empty: Any) -> None:
    desired = configmap()
    live = as_stored(desired)
    desired["metadata"]["annotations"] = empty
    live["binaryData"] = empty
    assert not exact(desired, live).changed


def test_exact_keeps_the_normalization_rules() -> None:
    desired = deployment()
    live = as_stored(desired)
    container(live)["resources"]["limits"]["cpu"] = "1000m"
    container(live)["resources"]["requests"]["memory"] = "1024Mi"
    live["spec"]["replicas"] = 2.0
    live["spec"] = dict(reversed(list(live["spec"].items())))  # key order is not drift
    assert not exact(desired, live).changed
    live["spec"]["paused"] = False
    result = exact(desired, live)
    assert result.changed and result.patch == ({"op": "remove", "path": "/spec/paused"},)
    assert "1000m" not in result.text  # equal values are shown in desired's spelling


@pytest.mark.parametrize(("desired_value", "live_value"), [(True, 1), (0, False), (1.0, True)])
def test_exact_bool_is_not_a_number(desired_value: Any, live_value: Any) -> None:
    desired = configmap()
    desired["spec"] = {"on": desired_value}
    live = as_stored(desired)
    live["spec"]["on"] = live_value
    assert exact(desired, live).changed
    assert_exact_patch_converges(desired, live)


def test_exact_values_marshal_cannot_write_still_compare() -> None:
    import datetime

    desired = configmap()
    desired["spec"] = {"at": datetime.date(2024, 5, 1)}  # a YAML timestamp
    live = as_stored(desired)
    assert not exact(desired, live).changed
    live["spec"]["at"] = datetime.date(2024, 5, 2)
    assert exact(desired, live).changed


def test_exact_secret_removals_are_masked() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "stringData": {"user": "admin"},
    }
    live = as_stored(desired)
    live["stringData"]["password"] = "hunter2"
    result = exact(desired, live)
    assert result.changed
    assert "hunter2" not in str(result.patch) and "aHVudGVyMg" not in str(result.patch)
    assert "hunter2" not in result.text and "aHVudGVyMg" not in result.text
    assert "-  password: ++++++++" in result.text.splitlines()  # the key, never the value
    assert not exact(desired, as_stored(desired)).changed
    stored_as_data = as_stored(desired)
    stored_as_data["data"] = {"user": "YWRtaW4="}  # what an API server stores
    del stored_as_data["stringData"]
    assert not exact(desired, stored_as_data).changed


@pytest.mark.parametrize("drift", [True, False])
def test_exact_inputs_are_never_mutated(drift: bool) -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: "{}", "keep": "me"}
    live = as_stored(desired)
    if drift:
        live["metadata"]["labels"]["extra"] = "x"
        _drift_removed_container(live)
        del desired["spec"]["replicas"]
    before = copy.deepcopy((desired, live))
    exact(desired, live)
    assert (desired, live) == before


def test_the_managed_drift_mode_needs_a_field_manager() -> None:
    with pytest.raises(ValueError, match="field_manager"):
        DriftPolicy(DriftMode.MANAGED)
    differ = open_differ("structural")
    assert isinstance(differ, StructuralDiffer)
    assert repr(differ) == "StructuralDiffer()"


NOTHING = ("nothing",)


def canonical(value: Any, key: object = None, quantities: bool = False) -> Any:
    """An independent statement of exact equality: equal canonical forms, by ``==``.

    ``null``, ``[]`` and mappings of nothing are one value (dropped from mappings), bools
    are tagged so that ``True != 1``, and values at quantity positions become their
    canonical quantity.
    """
    if value is None:
        return NOTHING
    if type(value) is dict:
        inner = key in QUANTITY_PARENT_KEYS
        kept = {name: canonical(item, name, inner) for name, item in value.items()}
        kept = {name: item for name, item in kept.items() if item != NOTHING}
        return kept or NOTHING
    if type(value) is list:
        return [canonical(item) for item in value] or NOTHING
    if type(value) is bool:
        return ("bool", value)
    if quantities or key in QUANTITY_KEYS:
        try:
            return ("quantity", canonical_quantity(value))
        except (ValueError, TypeError, ArithmeticError):
            pass
    return value


@given(manifests())
def test_property_exact_identical_is_unchanged(manifest: dict[str, Any]) -> None:
    assert not exact(manifest, manifest).changed
    assert not exact(manifest, copy.deepcopy(manifest)).changed
    assert not exact(manifest, as_stored(manifest)).changed


@given(manifests(), manifests())
def test_property_exact_patch_makes_live_equal_desired(
    desired: dict[str, Any], live: dict[str, Any]
) -> None:
    before = copy.deepcopy((desired, live))
    result = exact(desired, live)
    assert (desired, live) == before
    assert all(op["op"] in ("add", "replace", "remove") for op in result.patch)
    assert bool(result.text) == result.changed
    assert result.changed == (canonical(strip_ignored(desired)) != canonical(strip_ignored(live)))
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not exact(desired, patched).changed, result.patch
    assert canonical(strip_ignored(patched)) == canonical(strip_ignored(desired))
    assert patched.get("status") == live.get("status")  # server-owned fields are left alone


@given(st.data(), manifests())
def test_property_exact_live_only_fields_are_drift(
    data: st.DataObject, desired: dict[str, Any]
) -> None:
    live = data.draw(with_extras(desired))
    live["status"] = data.draw(VALUES)
    live["metadata"]["uid"] = "server-assigned"
    result = exact(desired, live)
    assert result.changed == (canonical(strip_ignored(desired)) != canonical(strip_ignored(live)))
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not exact(desired, patched).changed, result.patch
    assert patched["metadata"]["uid"] == "server-assigned"


# -- field-manager mode (Kubernetes server-side apply) -------------------------------------
# Live objects come from the emulator's server-side apply (pure functions, no server):
# managedFields as a real API server records them, defaults filled in.

FM = DriftPolicy(DriftMode.MANAGED, field_manager="gitops")


def fm(desired: dict[str, Any], live: dict[str, Any]) -> Diff:
    return DIFFER.diff(res(desired), res(live), FM)


def content(obj: dict[str, Any]) -> Any:
    """An object without managedFields and the other server-owned fields."""
    return strip_ignored(obj)


def assert_fm_converges(desired: dict[str, Any], live: dict[str, Any]) -> None:
    """The patch, and the next server-side apply, both leave nothing to report."""
    result = fm(desired, live)
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not fm(desired, patched).changed, result.patch
    assert not fm(desired, server_apply(live, desired)).changed


def test_fm_served_object_is_in_sync() -> None:
    for desired in (deployment(), configmap()):
        live = server_apply(None, desired)
        assert live["metadata"]["managedFields"][0]["manager"] == "gitops"
        assert fm(desired, live) == Diff(changed=False)


def test_fm_fields_removed_from_desired_are_drift_and_the_next_apply_removes_them() -> None:
    live = server_apply(None, configmap())
    desired = configmap()
    del desired["data"]["b"]
    del desired["metadata"]["labels"]["tier"]
    assert not diff(desired, live).changed  # the subset rule alone never sees it
    result = fm(desired, live)
    assert result.changed
    assert sorted(op["path"] for op in result.patch) == ["/data/b", "/metadata/labels/tier"]
    assert {op["op"] for op in result.patch} == {"remove"}
    changed = [line for line in result.text.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-    tier: '1'", "-  b: '2'"]
    applied = server_apply(live, desired)
    assert applied["data"] == {"a": "1", "c": "3"}
    assert applied["metadata"]["labels"] == {"app": "web"}
    assert_fm_converges(desired, live)


def test_fm_fields_of_other_managers_and_defaults_are_not_drift() -> None:
    desired = deployment()
    live = server_apply(None, desired)
    live = server_update(live, lambda o: o["metadata"]["labels"].update(team="a"), "kubectl-label")
    live = server_apply(live, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "prod", "annotations": {"other": "x"}}}, manager="other")
    live = server_update(live, lambda o: o["spec"].update(paused=True), "kubectl-edit")
    assert container(live)["imagePullPolicy"] == "IfNotPresent"  # a default: nobody owns it
    assert not fm(desired, live).changed
    del desired["metadata"]["labels"]
    result = fm(desired, live)
    assert result.patch == (
        {"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"},
    )  # ours only: team=a stays
    assert server_apply(live, desired)["metadata"]["labels"] == {"team": "a"}
    assert_fm_converges(desired, live)


def test_fm_a_field_another_manager_also_owns_converges_in_one_apply() -> None:
    live = server_apply(None, configmap())
    live = server_apply(live, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "settings", "namespace": "prod"}, "data": {"b": "2"}}, manager="other")
    desired = configmap()
    del desired["data"]["b"]
    assert fm(desired, live).changed  # ours to remove, as far as we know...
    applied = server_apply(live, desired)
    assert applied["data"]["b"] == "2"  # ...but the other manager keeps it
    assert not fm(desired, applied).changed


def test_fm_list_items_are_matched_by_key() -> None:
    desired = deployment()
    pod = desired["spec"]["template"]["spec"]
    pod["containers"].append({
        "name": "proxy", "image": "proxy:1", "args": ["--v=2"],
        "ports": [{"containerPort": 9000}, {"containerPort": 53, "protocol": "UDP"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    })
    pod["finalizers"] = ["a", "b"]  # a set
    live = server_apply(None, desired)
    assert not fm(desired, live).changed
    proxy = container(desired, 1)
    del proxy["args"]
    del proxy["env"][1]["value"]
    result = fm(desired, live)
    assert result.patch[:2] == (
        {"op": "remove", "path": "/spec/template/spec/containers/1/env/1/value"},
        {"op": "remove", "path": "/spec/template/spec/containers/1/args"},
    )
    assert_fm_converges(desired, live)
    del proxy["ports"][1]  # the UDP port goes: a shorter list, and our item
    pod["finalizers"] = ["b"]
    result = fm(desired, live)
    paths = [op["path"] for op in result.patch if op["op"] == "remove"]
    assert "/spec/template/spec/containers/1/ports/1" in paths
    assert "/spec/template/spec/finalizers/0" in paths
    assert_fm_converges(desired, live)


def test_fm_only_the_managers_apply_entry_counts() -> None:
    desired = configmap()
    live = server_apply(None, desired)
    del desired["data"]["b"]
    entry = live["metadata"]["managedFields"][0]
    cases: list[tuple[dict[str, Any], bool]] = [
        ({}, True),
        ({"operation": "Update"}, False),
        ({"manager": "gitops-other"}, False),
        ({"subresource": "status"}, False),
        ({"apiVersion": "v2"}, False),  # recorded at another version: paths may differ
        ({"fieldsV1": None}, False),
        ({"fieldsV1": {"f:data": "nonsense", "k:notjson": {}, "v:[": {}, "i:x": {}}}, False),
    ]
    for changed_entry, drift in cases:
        other = copy.deepcopy(live)
        other["metadata"]["managedFields"] = [{**entry, **changed_entry}]
        assert fm(desired, other).changed is drift, changed_entry
    for managed in (None, "nonsense", [None, 1, "x"]):
        other = copy.deepcopy(live)
        other["metadata"]["managedFields"] = managed
        assert not fm(desired, other).changed


def test_fm_secret_removals_are_masked() -> None:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "data": {"user": "YWRtaW4=", "password": "aHVudGVyMg=="},
    }
    live = server_apply(None, secret)
    desired = copy.deepcopy(secret)
    del desired["data"]["password"]
    result = fm(desired, live)
    assert result.changed and result.patch == ({"op": "remove", "path": "/data/password"},)
    assert "aHVudGVyMg" not in result.text and "hunter2" not in result.text
    assert "-  password: ++++++++" in result.text.splitlines()
    assert_fm_converges(desired, live)


def test_fm_a_key_removed_from_secret_string_data_is_not_drift() -> None:
    """Server-side apply cannot remove it (kubernetes/kubernetes#108008): use data."""
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "stringData": {"user": "admin", "password": "hunter2"},
    }
    live = server_apply(None, secret)
    del secret["stringData"]["password"]
    assert not fm(secret, live).changed
    assert "password" in server_apply(live, secret)["data"]


@pytest.mark.parametrize("drift", [True, False])
def test_fm_inputs_are_never_mutated(drift: bool) -> None:
    desired = deployment()
    live = server_apply(None, desired)
    if drift:
        del container(desired)["env"]
        del desired["metadata"]["labels"]
    before = copy.deepcopy((desired, live))
    fm(desired, live)
    assert (desired, live) == before


LABELS = st.dictionaries(st.sampled_from(["app", "tier", "team", "x/y"]),
                         st.sampled_from(["a", "b"]), max_size=3)
DATA = st.dictionaries(st.sampled_from(["k1", "k2", "k3", "k4"]), st.sampled_from(["1", "2"]),
                       max_size=4)


@st.composite
def containers(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(["app", "proxy", "init"]), min_size=1, max_size=2,
                          unique=True))
    out = []
    for name in names:
        item: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(["i:1", "i:2"]))}
        if draw(st.booleans()):
            item["args"] = draw(st.lists(st.sampled_from(["-v", "-q"]), max_size=2))
        env = draw(st.dictionaries(st.sampled_from(["A", "B", "C"]), st.sampled_from(["1", "2"]),
                                   max_size=3))
        if env:
            item["env"] = [{"name": k, "value": v} for k, v in env.items()]
        ports = draw(st.lists(st.sampled_from([80, 443]), max_size=2, unique=True))
        if ports:
            item["ports"] = [{"containerPort": p} for p in ports]
        out.append(item)
    return out


@st.composite
def applied_objects(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "o", "namespace": "ns", "labels": draw(LABELS)}
    if draw(st.booleans()):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": draw(DATA)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
        "replicas": draw(st.sampled_from([1, 2])),
        "template": {"metadata": {"labels": draw(LABELS)},
                     "spec": {"containers": draw(containers())}}}}


@st.composite
def edited(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with fields and list items removed, values changed and fields added.

    Lists only lose items or grow at the end: the emulator keeps live's order on a merge
    where a real server follows the applied order, and lists compare by position.
    """
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            if key in ("name", "apiVersion", "kind", "namespace"):
                out[key] = item  # identity
            elif draw(st.integers(0, 4)):  # one field in five goes
                out[key] = draw(edited(item))
        if draw(st.booleans()) and value and all(type(v) is str for v in value.values()):
            out[draw(st.sampled_from(["k9", "z/new"]))] = "added"
        return out
    if type(value) is list:
        kept = [draw(edited(item)) for item in value if draw(st.integers(0, 4))]
        named = bool(kept) and all(type(item) is dict and "name" in item for item in kept)
        if named and draw(st.booleans()) and all(item["name"] != "Z" for item in kept):
            kept.append({"name": "Z", "value": "z"} if "value" in kept[0] else
                        {"name": "Z", "image": "z:1"})
        return kept
    if type(value) is str and draw(st.booleans()):
        return value + "2"
    return value


@given(st.data(), applied_objects(), LABELS, st.booleans())
def test_property_fm_in_sync_means_the_next_apply_changes_nothing(
    data: st.DataObject, old: dict[str, Any], theirs: dict[str, str], co_apply: bool
) -> None:
    """Against the emulator's server-side apply: the differ misses no change an apply would
    make, and one apply always converges (the engine's laws, for this differ)."""
    new = data.draw(edited(old))
    new.setdefault("metadata", {"name": "o", "namespace": "ns"})
    live = server_apply(None, old)
    if theirs:  # another manager labels the object
        live = server_update(live, lambda o: o["metadata"].setdefault("labels", {}).update(
            {f"their/{k}": v for k, v in theirs.items()}), "kubectl-label")
    if co_apply:  # another manager applies some of the same fields (no list items: see
        # docs/kubernetes.md, items others own in a list are drift, as lists compare by position)
        shared = {k: v for k, v in old.items() if k not in ("spec", "metadata")}
        shared["metadata"] = {**old["metadata"], "labels": {**old["metadata"]["labels"], **theirs}}
        if "spec" in old:
            shared["spec"] = {"replicas": old["spec"]["replicas"]}
        live = server_apply(live, shared, manager="other")
    before = copy.deepcopy((new, live))
    result = fm(new, live)
    assert (new, live) == before
    applied = server_apply(live, new)
    if not result.changed:  # modulo empty values, which the emulator keeps and Go omits
        assert canonical(content(applied)) == canonical(content(live)), "a change was missed"
    assert not fm(new, applied).changed, "one apply must converge"
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not fm(new, patched).changed, result.patch


def test_fm_an_item_that_leaves_the_key_out_does_not_hide_the_one_that_has_it() -> None:
    """A counterexample of the property above: the port item ``{}`` matches any key, yet
    the ``443`` item is the one that declares the 443 port's ``containerPort``."""
    old: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "o", "namespace": "ns", "labels": {}},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {}}, "spec": {"containers": [
            {"name": "app", "image": "i:1", "env": [{"name": "A", "value": "1"}],
             "ports": [{"containerPort": 80}, {"containerPort": 443}]},
            {"name": "proxy", "image": "i:1"},
        ]}}},
    }
    new: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "o", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "ports": [{}, {"containerPort": 443}]},
        ]}}},
    }
    live = server_apply(None, old)
    result = fm(new, live)
    assert result.changed
    paths = [op["path"] for op in result.patch]
    assert "/spec/template/spec/containers/0/ports/0/containerPort" in paths  # port 80's goes
    assert "/spec/template/spec/containers/0/ports/1/containerPort" not in paths  # 443's stays
    assert not fm(new, server_apply(live, new)).changed
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not fm(new, patched).changed, result.patch


def test_fm_a_field_that_goes_by_key_but_is_declared_by_position_is_added_back() -> None:
    """Removals pair list items by key, the patch walk (no list types) by position: when
    they disagree, what the item at that position declares is put back after the removal."""
    def deployment_with(ports: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "o", "namespace": "ns"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "i:1", "ports": ports}]}}}}

    live = server_apply(None, deployment_with([{"containerPort": 80}, {"containerPort": 443}]))
    desired = deployment_with([{"containerPort": 443}, {}])
    result = fm(desired, live)
    assert result.patch == (
        {"op": "remove", "path": "/spec/template/spec/containers/0/ports/0/containerPort"},
        {"op": "add", "path": "/spec/template/spec/containers/0/ports/0/containerPort",
         "value": 443},
    )
    assert "-        - containerPort: 80\n+        - containerPort: 443\n" in result.text
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not fm(desired, patched).changed, result.patch


@pytest.mark.parametrize("policy", [DriftPolicy(), EXACT, FM], ids=lambda p: p.mode.value)
def test_a_bool_is_no_quantity(policy: DriftPolicy) -> None:
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "LimitRange",
                               "metadata": {"name": "l"},
                               "spec": {"limits": [{"max": {"cpu": True}}], "storage": "1"}}
    live = copy.deepcopy(desired)
    live["spec"]["limits"][0]["max"]["cpu"] = "1"
    assert DIFFER.diff(res(desired), res(live), policy).changed
    live = copy.deepcopy(desired)
    live["spec"]["storage"] = True
    assert DIFFER.diff(res(desired), res(live), policy).changed


def test_removed_fields_reads_every_fields_v1_element() -> None:
    live: dict[str, Any] = {"spec": {
        "items": ["a", "b", "c"],
        "set": ["x", "y"],
        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
        "map": {"k": "v"},
        "kept": {"k": "v", "theirs": "w"},
        "empty": {},
    }}
    owned = {"f:spec": {
        "f:items": {"i:2": {}, "i:9": {}, "i:x": {}},
        "f:set": {'v:"y"': {}, 'v:"gone"': {}},
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:name": {}}},
        "f:map": {".": {}, "f:k": {}},
        "f:kept": {"f:k": {}},
        "f:empty": {},
        "f:missing": {},
    }}
    desired = {"spec": {"items": ["a", "b"], "set": ["x"], "ports": [{"containerPort": 80}],
                        "map": None}}
    assert removed_fields(owned, desired, live) == [
        (("spec", "items", 2), "c"),
        (("spec", "set", 1), "y"),
        (("spec", "ports", 0, "name"), "http"),
        (("spec", "map"), {"k": "v"}),  # owned whole (".")
        (("spec", "kept", "k"), "v"),  # only what the manager owns inside
    ]
    assert removed_fields(owned, desired, live, first=True) == [(("spec", "items", 2), "c")]
    assert removed_fields(owned, live, live) == []
    udp = {"spec": {"ports": [{"containerPort": 80, "protocol": "UDP"}]}}
    assert removed_fields({"f:spec": {"f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
        ".": {}}}}}, udp, live) == [(("spec", "ports", 0), live["spec"]["ports"][0])]


def test_applied_fields_picks_the_managers_apply_entry() -> None:
    entry = {"manager": "gitops", "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}
    live = {"apiVersion": "v1", "metadata": {"managedFields": [
        {**entry, "operation": "Update", "fieldsV1": {"f:x": {}}},
        {**entry, "subresource": "status", "fieldsV1": {"f:status": {}}},
        entry,
    ]}}
    assert applied_fields(live, "gitops") == {"f:data": {}}
    assert applied_fields(live, "someone") is None
    assert applied_fields({"apiVersion": "v2", "metadata": live["metadata"]}, "gitops") is None
    assert applied_fields({"metadata": None}, "gitops") is None
