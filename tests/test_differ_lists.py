"""Lists that merge by key: the built-in table, OpenAPI reduction, and what the differ does with them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from differ_support import server_apply, server_update
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.lists import (
    ChainListTypes,
    SchemaListTypes,
    builtin_list_types,
    item_key,
    member,
    openapi_list_types,
    reduce_openapi,
    version_priority,
)
from gitops.differs.structural import StructuralDiffer
from gitops.model import Diff, DriftMode, DriftPolicy, ListType, Resource

DATA = Path(__file__).parent / "data" / "differ"
DIFFER = StructuralDiffer()
TABLE = builtin_list_types()
SUBSET = DriftPolicy(list_types=TABLE)
MANAGED = DriftPolicy(DriftMode.MANAGED, field_manager="gitops", list_types=TABLE)
EXACT = DriftPolicy(DriftMode.EXACT, list_types=TABLE)

# -- the built-in table: Kubernetes 1.32's OpenAPI v3 extensions ---------------------------

POD_SPECS = [
    ("", "Pod", ("spec",)),
    ("", "PodTemplate", ("template", "spec")),
    ("", "ReplicationController", ("spec", "template", "spec")),
    ("apps", "Deployment", ("spec", "template", "spec")),
    ("apps", "StatefulSet", ("spec", "template", "spec")),
    ("apps", "DaemonSet", ("spec", "template", "spec")),
    ("apps", "ReplicaSet", ("spec", "template", "spec")),
    ("batch", "Job", ("spec", "template", "spec")),
    ("batch", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
]


@pytest.mark.parametrize(("group", "kind", "pod"), POD_SPECS)
def test_pod_templates_of_every_workload_kind_are_keyed(
    group: str, kind: str, pod: tuple[str, ...]
) -> None:
    def at(*path: str) -> ListType | None:
        return TABLE.list_type(group, kind, (*pod, *path))

    by_name = ListType("map", ("name",))
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        assert at(containers) == by_name
        assert at(containers, "env") == by_name
        assert at(containers, "ports") == ListType("map", ("containerPort", "protocol"))
        assert at(containers, "volumeMounts") == ListType("map", ("mountPath",))
        assert at(containers, "args") == ListType("atomic")
    assert at("volumes") == by_name
    assert at("imagePullSecrets") == by_name
    assert at("hostAliases") == ListType("map", ("ip",))
    assert at("tolerations") == ListType("atomic")  # atomic, whatever strategic merge says
    assert at("topologySpreadConstraints") == ListType(
        "map", ("topologyKey", "whenUnsatisfiable"))
    assert at("nodeName") is None  # not a list
    assert at("containers", "image") is None
    assert at("nosuchfield") is None


def test_other_built_in_lists() -> None:
    assert TABLE.list_type("", "Service", ("spec", "ports")) == ListType("map", ("port", "protocol"))
    assert TABLE.list_type("", "ConfigMap", ("metadata", "finalizers")) == ListType("set")
    assert TABLE.list_type("apps", "Deployment", ("metadata", "ownerReferences")) == ListType(
        "map", ("uid",))
    assert TABLE.list_type("apps", "Deployment", ("status", "conditions")) == ListType(
        "map", ("type",))
    assert TABLE.list_type("apps", "Deployment", ("metadata", "labels")) is None  # a map
    assert TABLE.knows("apps", "Deployment") and TABLE.knows("", "Secret")
    assert not TABLE.knows("example.com", "Widget")
    assert TABLE.list_type("example.com", "Widget", ("spec", "items")) is None


def test_the_table_names_its_source() -> None:
    data = json.loads((Path(__file__).parent.parent / "gitops/differs/data"
                       / "k8s-1.32-list-types.json").read_text())
    source = data["source"]
    assert source["repo"] == "kubernetes/kubernetes" and source["ref"] == "release-1.32"
    assert source["path"] == "api/openapi-spec/v3"
    assert "231e3efa7409321bb60dc20ef766be3fc59a9759" in source["via"]


def test_a_recorded_served_document_reduces_to_the_built_in_table() -> None:
    """The reduction the Kubernetes target runs on served documents is the one that built
    the table: the recorded apiregistration.k8s.io/v1 document gives the same answers."""
    document = json.loads((DATA / "apis__apiregistration.k8s.io__v1_openapi.json").read_text())
    kinds, types = reduce_openapi(document)
    assert set(kinds) == {("apiregistration.k8s.io", "v1", "APIService")}  # no meta kinds
    served = SchemaListTypes({(g, k): name for (g, _v, k), name in kinds.items()}, types)
    for path in [("status", "conditions"), ("metadata", "finalizers"),
                 ("metadata", "ownerReferences"), ("metadata", "managedFields"),
                 ("spec", "caBundle"), ("spec", "service")]:
        assert served.list_type("apiregistration.k8s.io", "APIService", path) == \
            TABLE.list_type("apiregistration.k8s.io", "APIService", path), path
    assert served.list_type("apiregistration.k8s.io", "APIService", ("status", "conditions")) \
        == ListType("map", ("type",))


def custom_document() -> dict[str, Any]:
    """A custom resource's document in the served format (inline schema, as the API server
    builds it from a CRD): list-type map, set, a merge-key-only list, a map of lists."""
    item = {"type": "object", "properties": {"name": {"type": "string"},
                                             "port": {"type": "integer"}}}
    return {
        "openapi": "3.0.0",
        "paths": {"/apis/example.com/v1/namespaces/{namespace}/widgets/{name}": {"patch": {
            "x-kubernetes-group-version-kind": {
                "group": "example.com", "version": "v1", "kind": "Widget"}}}},
        "components": {"schemas": {
            "com.example.v1.Widget": {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "example.com", "kind": "Widget", "version": "v1"}],
                "properties": {
                    "metadata": {"allOf": [{"$ref": "#/components/schemas/"
                                            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
                    "spec": {"type": "object", "properties": {
                        "backends": {"type": "array", "items": item,
                                     "x-kubernetes-list-type": "map",
                                     "x-kubernetes-list-map-keys": ["name", "port"]},
                        "tags": {"type": "array", "items": {"type": "string"},
                                 "x-kubernetes-list-type": "set"},
                        "legacy": {"type": "array", "items": item,
                                   "x-kubernetes-patch-strategy": "merge",
                                   "x-kubernetes-patch-merge-key": "name"},
                        "plain": {"type": "array", "items": item},
                        "routes": {"type": "object", "additionalProperties": {
                            "type": "array", "items": item, "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"]}},
                        "scalar": {"type": "string"},
                    }},
                },
            },
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {
                "finalizers": {"type": "array", "items": {"type": "string"},
                               "x-kubernetes-list-type": "set"}}},
        }},
    }


def test_custom_resource_list_types_from_a_document() -> None:
    widgets = openapi_list_types(custom_document())

    def at(*path: str) -> ListType | None:
        return widgets.list_type("example.com", "Widget", path)

    assert at("spec", "backends") == ListType("map", ("name", "port"))
    assert at("spec", "tags") == ListType("set")
    assert at("spec", "legacy") == ListType("map", ("name",))
    assert at("spec", "plain") == ListType("atomic")
    assert at("spec", "routes", "any-key") == ListType("map", ("name",))
    assert at("spec", "scalar") is None
    assert at("metadata", "finalizers") == ListType("set")


def test_chain_asks_the_first_source_that_knows_the_kind() -> None:
    chain = ChainListTypes(TABLE, openapi_list_types(custom_document()))
    assert chain.list_type("example.com", "Widget", ("spec", "tags")) == ListType("set")
    assert chain.list_type("apps", "Deployment", ("spec", "template", "spec", "containers")) \
        == ListType("map", ("name",))
    assert chain.knows("example.com", "Widget") and not chain.knows("x.io", "Y")


def test_version_priority_is_kubernetes_order() -> None:
    versions = ["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "v1beta1", "foo", "v10alpha1"]
    assert sorted(versions, key=version_priority) == [
        "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v10alpha1", "v1alpha1", "foo"]


def test_item_keys_default_the_protocol_and_keep_true_apart_from_one() -> None:
    keys = ("containerPort", "protocol")
    assert item_key({"containerPort": 80}, keys) == item_key(
        {"containerPort": 80, "protocol": "TCP"}, keys)
    assert item_key({"containerPort": 53}, keys) != item_key(
        {"containerPort": 53, "protocol": "UDP"}, keys)
    assert member(True) != member(1) and member(1) == member(1.0)
    assert member({"a": [1]}) == member({"a": [1]})


# -- the differ with keyed lists --------------------------------------------------------------


def res(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest)


def diff(desired: dict[str, Any], live: dict[str, Any], policy: DriftPolicy) -> Diff:
    return DIFFER.diff(res(desired), res(live), policy)


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers) or [app()]},
            },
        },
    }


def app(*env: str, name: str = "app") -> dict[str, Any]:
    return {"name": name, "image": f"{name}:1",
            "env": [{"name": e, "value": e.lower()} for e in env or ("A", "B")],
            "ports": [{"containerPort": 8080}]}


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return found


def assert_converges(desired: dict[str, Any], live: dict[str, Any], policy: DriftPolicy) -> None:
    result = diff(desired, live, policy)
    patched = jsonpatch.apply_patch(live, list(result.patch))
    assert not diff(desired, patched, policy).changed, result.patch


def test_keyed_list_order_is_not_drift_but_exact_mode_keeps_positions() -> None:
    desired = deployment(app("A", "B", "C"), app(name="sidecar"))
    live = copy.deepcopy(desired)
    pod(live)["containers"].reverse()
    pod(live)["containers"][1]["env"].reverse()
    assert not diff(desired, live, SUBSET).changed
    assert not diff(desired, live, MANAGED).changed
    assert diff(desired, live, DriftPolicy()).changed  # no list types: by position
    assert diff(desired, live, EXACT).changed  # dir: and mock: keep exact semantics


def test_items_another_writer_added_are_not_drift_in_subset_mode() -> None:
    desired = deployment()
    live = copy.deepcopy(desired)
    pod(live)["containers"][0]["env"].insert(0, {"name": "INJECTED", "value": "1"})
    pod(live)["containers"].append(app(name="istio-proxy"))
    assert not diff(desired, live, SUBSET).changed
    assert diff(desired, live, EXACT).changed


def test_a_changed_item_is_found_by_key_and_the_patch_converges() -> None:
    desired = deployment(app("A", "B"), app("X", name="sidecar"))
    live = copy.deepcopy(desired)
    pod(live)["containers"].reverse()  # live order: sidecar, app
    pod(live)["containers"].insert(1, app(name="istio-proxy"))  # another writer's
    pod(desired)["containers"][0]["image"] = "app:2"
    pod(desired)["containers"][0]["env"].append({"name": "C", "value": "c"})
    pod(desired)["containers"].append(app(name="new"))
    result = diff(desired, live, SUBSET)
    assert result.changed
    assert list(result.patch) == [
        {"op": "replace", "path": "/spec/template/spec/containers/2/image", "value": "app:2"},
        {"op": "add", "path": "/spec/template/spec/containers/2/env/-",
         "value": {"name": "C", "value": "c"}},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": app(name="new")},
    ]
    assert_converges(desired, live, SUBSET)
    changed = [line for line in result.text.splitlines()[2:] if line[:1] in "+-"]
    assert "istio-proxy" not in result.text  # others' items are not shown
    assert changed[:2] == ["-        image: app:1", "+        image: app:2"]
    assert "+          value: c" in changed and "+      - name: new" in changed
    assert not any("sidecar" in line for line in changed)  # order alone is never a change


def test_ports_key_on_port_and_protocol_with_tcp_by_default() -> None:
    desired = deployment()
    live = copy.deepcopy(desired)
    pod(live)["containers"][0]["ports"] = [{"containerPort": 8080, "protocol": "TCP"}]
    assert not diff(desired, live, SUBSET).changed
    pod(live)["containers"][0]["ports"] = [{"containerPort": 8080, "protocol": "UDP"}]
    assert diff(desired, live, SUBSET).changed  # 8080/TCP is missing
    assert_converges(desired, live, SUBSET)


def test_sets_compare_as_sets() -> None:
    desired = deployment()
    desired["metadata"]["finalizers"] = ["a.example/x", "b.example/y"]
    live = copy.deepcopy(desired)
    live["metadata"]["finalizers"] = ["b.example/y", "other.example/z", "a.example/x"]
    assert not diff(desired, live, SUBSET).changed
    live["metadata"]["finalizers"] = ["b.example/y"]
    result = diff(desired, live, SUBSET)
    assert result.patch == ({"op": "add", "path": "/metadata/finalizers/-",
                             "value": "a.example/x"},)
    assert_converges(desired, live, SUBSET)


def test_argo_cd_three_way_diff_example3_env_inserted_by_another_writer() -> None:
    """Argo CD's TestThreeWayDiffExample3 (gitops-engine pkg/diff/diff_test.go; data in
    tests/data/differ/PROVENANCE.md): live has VAR2 inserted before VAR1 by another writer;
    expected: not modified."""
    config = json.loads((DATA / "argo-deployment-config.json").read_text())
    live = json.loads((DATA / "argo-deployment-live.json").read_text())
    assert not diff(config, live, SUBSET).changed
    assert not diff(config, live, MANAGED).changed  # no managedFields: nothing of ours to remove
    assert diff(config, live, DriftPolicy()).changed  # what lists by position used to say


# -- managed mode: live objects from the emulator's server-side apply --------------------


def test_kubectl_set_env_and_a_sidecar_injector_are_not_drift() -> None:
    desired = deployment()
    live = server_apply(None, desired)
    live = server_update(live, lambda o: pod(o)["containers"][0]["env"].append(
        {"name": "DEBUG", "value": "1"}), "kubectl-set")
    live = server_update(live, lambda o: pod(o)["containers"].insert(0, app(name="istio-proxy")),
                         "istio-sidecar-injector")
    assert [c["name"] for c in pod(live)["containers"]] == ["istio-proxy", "app"]
    assert not diff(desired, live, MANAGED).changed
    assert diff(desired, live, DriftPolicy(DriftMode.MANAGED, field_manager="gitops")).changed


def test_removing_an_item_gitops_owns_is_drift_and_converges() -> None:
    desired = deployment(app("A", "B", "C"), app(name="sidecar"))
    live = server_apply(None, desired)
    live = server_update(live, lambda o: pod(o)["containers"].insert(0, app(name="istio-proxy")),
                         "istio-sidecar-injector")
    del pod(desired)["containers"][1]  # the sidecar gitops applied
    del pod(desired)["containers"][0]["env"][1]  # env B
    result = diff(desired, live, MANAGED)
    assert result.changed
    assert sorted(op["path"] for op in result.patch) == [
        "/spec/template/spec/containers/1/env/1", "/spec/template/spec/containers/2"]
    assert {op["op"] for op in result.patch} == {"remove"}
    assert "istio-proxy" not in result.text
    changed = [line for line in result.text.splitlines()[2:] if line[:1] in "+-"]
    assert "-      - name: sidecar" in changed and "-        - name: B" in changed
    assert not any(line.startswith("+") for line in changed)
    assert_converges(desired, live, MANAGED)
    applied = server_apply(live, desired)
    assert [c["name"] for c in pod(applied)["containers"]] == ["istio-proxy", "app"]
    assert not diff(desired, applied, MANAGED).changed


def test_a_field_desired_declares_null_shows_what_goes_inside_it() -> None:
    desired = deployment()
    desired["metadata"]["labels"] = {"app": "web", "tier": "1"}
    live = server_apply(None, desired)
    desired["metadata"]["labels"] = None  # a template's empty "labels:"
    result = diff(desired, live, MANAGED)
    assert sorted(op["path"] for op in result.patch) == [
        "/metadata/labels/app", "/metadata/labels/tier"]
    changed = [line for line in result.text.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-  labels:", "-    app: web", "-    tier: '1'", "+  labels: null"]
    assert_converges(desired, live, MANAGED)


container_names = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=4,
                           unique=True)
env_names = st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True)


@given(ours=container_names, env=env_names, theirs=st.lists(st.sampled_from(["x", "y", "z"]),
       max_size=3, unique=True), their_env=st.lists(st.sampled_from(["X", "Y"]), max_size=2,
       unique=True), positions=st.lists(st.integers(0, 10), min_size=8, max_size=8),
       data=st.data())
def test_property_others_items_never_drift_and_removing_ours_always_does(
    ours: list[str], env: list[str], theirs: list[str], their_env: list[str],
    positions: list[int], data: st.DataObject,
) -> None:
    desired = deployment(*(app(*env, name=name) for name in ours))
    live = server_apply(None, desired)

    def add_theirs(obj: dict[str, Any]) -> None:
        containers = pod(obj)["containers"]
        for n, name in enumerate(theirs):
            containers.insert(positions[n] % (len(containers) + 1), app(name=name))
        for n, var in enumerate(their_env):
            target = containers[positions[3 + n] % len(containers)]
            target["env"].insert(positions[5 + n] % (len(target["env"]) + 1),
                                 {"name": var, "value": "theirs"})

    live = server_update(live, add_theirs, "other-writer")
    assert not diff(desired, live, MANAGED).changed

    removed = data.draw(st.sampled_from(["container", "env"]))
    smaller = copy.deepcopy(desired)
    containers = pod(smaller)["containers"]
    if removed == "container" and len(containers) > 1:
        del containers[data.draw(st.integers(0, len(containers) - 1))]
    else:
        target = containers[data.draw(st.integers(0, len(containers) - 1))]
        del target["env"][data.draw(st.integers(0, len(target["env"]) - 1))]
    result = diff(smaller, live, MANAGED)
    assert result.changed and {op["op"] for op in result.patch} == {"remove"}
    assert_converges(smaller, live, MANAGED)
    assert not diff(smaller, server_apply(live, smaller), MANAGED).changed


@st.composite
def edited_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A desired Deployment and a live one that another writer and time have changed:
    items reordered, added, removed, edited, at any depth of the keyed lists."""
    names = draw(container_names)
    desired = deployment(*(app(*draw(env_names), name=n) for n in names))
    live = copy.deepcopy(desired)
    containers = pod(live)["containers"]
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(["shuffle", "add", "drop", "image", "env", "port"]))
        target = containers[draw(st.integers(0, len(containers) - 1))] if containers else None
        if edit == "shuffle":
            containers[:] = draw(st.permutations(containers))
            if target is not None:
                target["env"][:] = draw(st.permutations(target["env"]))
        elif edit == "add":
            containers.insert(draw(st.integers(0, len(containers))), app(name="z"))
        elif edit == "drop" and len(containers) > 1:
            containers.remove(draw(st.sampled_from(containers)))
        elif target is not None and edit == "image":
            target["image"] = draw(st.sampled_from(["app:1", "app:2"]))
        elif target is not None and edit == "env" and target["env"]:
            target["env"][draw(st.integers(0, len(target["env"]) - 1))]["value"] = "edited"
        elif target is not None and edit == "port":
            target["ports"] = [{"containerPort": 8080, "protocol": draw(
                st.sampled_from(["TCP", "UDP"]))}]
    return desired, live


@given(pair=edited_pairs())
def test_property_keyed_diffs_are_consistent_and_patches_converge(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    desired, live = pair
    for policy in (SUBSET, EXACT, DriftPolicy()):
        result = diff(desired, live, policy)
        assert result.changed == bool(result.patch), (policy.mode, result)
        if result.changed:
            assert_converges(desired, live, policy)
    ours = {c["name"]: c for c in pod(desired)["containers"]}
    theirs = {c["name"]: c for c in pod(live)["containers"]}
    same = all(name in theirs and diff(
        deployment(c), deployment(theirs[name]), SUBSET).changed is False
        for name, c in ours.items())
    assert diff(desired, live, SUBSET).changed is not same


@pytest.mark.parametrize("mode", [DriftMode.SUBSET, DriftMode.MANAGED])
def test_a_key_twice_in_live_is_drift_and_the_patch_removes_the_second(mode: DriftMode) -> None:
    """A JSON patch can set `env` FOO twice; the container sees the last one. Matching the
    first alone would say "in sync" while the workload runs with the other value."""
    def deployment(env: list[dict[str, str]]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "w", "namespace": "n"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "c", "image": "i", "env": env}]}}}}

    policy = DriftPolicy(mode, field_manager="gitops" if mode is DriftMode.MANAGED else "",
                         list_types=builtin_list_types())
    desired = deployment([{"name": "FOO", "value": "good"}])
    for live in (
        deployment([{"name": "FOO", "value": "good"}, {"name": "FOO", "value": "evil"}]),
        deployment([{"name": "BAR", "value": "x"}, {"name": "FOO", "value": "good"},
                    {"name": "FOO", "value": "evil"}]),
    ):
        result = StructuralDiffer().diff(res(desired), res(live), policy)
        assert result.changed, live
        patched = jsonpatch.apply_patch(live, list(result.patch))
        env = patched["spec"]["template"]["spec"]["containers"][0]["env"]
        assert [e for e in env if e["name"] == "FOO"] == [{"name": "FOO", "value": "good"}]
        assert not StructuralDiffer().diff(res(desired), res(patched), policy).changed
    others = deployment([{"name": "FOO", "value": "good"}, {"name": "BAR", "value": "1"},
                         {"name": "BAR", "value": "2"}])  # a key desired does not declare
    assert not StructuralDiffer().diff(res(desired), res(others), policy).changed
