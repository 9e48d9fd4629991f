"""The structural differ: what is drift, what is not, and the patch and text it reports."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.structural import StructuralDiffer
from gitops.masking import LAST_APPLIED_ANNOTATION
from gitops.model import Diff, Resource
from gitops.plugins import open_differ

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
