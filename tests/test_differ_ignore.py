"""Ignore rules (Argo CD's ignoreDifferences): each selector, each path form, and RespectIgnoreDifferences."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from differ_support import NOW, server_apply

from gitops.differs.ignore import load_ignore_differences, respect_ignored, validate_rules
from gitops.differs.jqpaths import JqRunner, check_expression
from gitops.differs.lists import builtin_list_types
from gitops.differs.structural import StructuralDiffer, explain
from gitops.errors import InputError
from gitops.model import DriftMode, DriftPolicy, IgnoreDifference, Resource
from gitops.testing.kube import apply as ssa

DIFFER = StructuralDiffer()
TABLE = builtin_list_types()


def res(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest)


def deployment(name: str = "web", namespace: str = "prod", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "a"}]}]}},
        },
    }


def rule(**fields: Any) -> IgnoreDifference:
    fields.setdefault("group", "apps")
    fields.setdefault("kind", "Deployment")
    return IgnoreDifference.model_validate(fields)


def policy(*rules: IgnoreDifference, mode: DriftMode = DriftMode.SUBSET,
           keyed: bool = True) -> DriftPolicy:
    return DriftPolicy(mode, field_manager="gitops" if mode is DriftMode.MANAGED else "",
                       list_types=TABLE if keyed else None, ignore=rules)


def changed(desired: dict[str, Any], live: dict[str, Any], pol: DriftPolicy) -> bool:
    return DIFFER.diff(res(desired), res(live), pol).changed


def scaled(replicas: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    desired = deployment()
    live = copy.deepcopy(desired)
    live["spec"]["replicas"] = replicas
    return desired, live


# -- selectors ------------------------------------------------------------------------------


def test_a_rule_applies_by_group_and_kind_and_optional_name_and_namespace() -> None:
    desired, live = scaled()
    pointer = {"jsonPointers": ["/spec/replicas"]}
    assert changed(desired, live, policy())
    for matching in (rule(**pointer), rule(name="web", **pointer),
                     rule(namespace="prod", **pointer), rule(name="web", namespace="prod", **pointer),
                     rule(kind="*", **pointer), rule(group="*", kind="*", **pointer)):
        assert not changed(desired, live, policy(matching)), matching
    for other in (rule(name="api", **pointer), rule(namespace="dev", **pointer),
                  rule(kind="StatefulSet", **pointer), rule(group="", **pointer),
                  rule(group="apps", kind="Deployment", jsonPointers=["/spec/paused"])):
        assert changed(desired, live, policy(other)), other


def test_rules_accept_argo_cd_camel_case_and_snake_case() -> None:
    assert rule(jsonPointers=["/a"]) == rule(json_pointers=["/a"])
    assert rule(managedFieldsManagers=["x"]).managed_fields_managers == ("x",)
    with pytest.raises(ValueError, match="extra"):
        IgnoreDifference.model_validate({"kind": "Deployment", "jsonPointer": ["/a"]})


# -- json pointers --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(DriftMode))
def test_hpa_owned_replicas_are_not_drift_and_a_sync_keeps_them(mode: DriftMode) -> None:
    desired, live = scaled(7)
    pol = policy(rule(jsonPointers=["/spec/replicas"]), mode=mode)
    assert changed(desired, live, policy(mode=mode))
    assert not changed(desired, live, pol)
    applied = respect_ignored(res(desired), res(live), pol)
    assert applied.manifest["spec"]["replicas"] == 7  # the autoscaler's value stays
    assert desired["spec"]["replicas"] == 2  # the input is untouched
    del live["spec"]["replicas"]
    applied = respect_ignored(res(desired), res(live), pol)
    assert "replicas" not in applied.manifest["spec"]  # live lacks it: removed from desired
    assert not changed(desired, live, pol)


def test_a_field_only_live_has_is_kept_in_exact_mode() -> None:
    desired = deployment()
    live = copy.deepcopy(desired)
    live["metadata"]["annotations"] = {"sidecar.istio.io/status": "injected"}
    pol = policy(rule(jsonPointers=["/metadata/annotations/sidecar.istio.io~1status"]),
                 mode=DriftMode.EXACT)
    assert changed(desired, live, policy(mode=DriftMode.EXACT))
    assert not changed(desired, live, pol)
    applied = respect_ignored(res(desired), res(live), pol).manifest
    assert applied["metadata"]["annotations"] == {"sidecar.istio.io/status": "injected"}


def test_pointers_into_lists_use_indices() -> None:
    desired = deployment()
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "app:patched"
    pol = policy(rule(jsonPointers=["/spec/template/spec/containers/0/image"]),
                 mode=DriftMode.EXACT)
    assert not changed(desired, live, pol)
    assert respect_ignored(res(desired), res(live), pol).manifest["spec"]["template"]["spec"][
        "containers"][0]["image"] == "app:patched"


def test_the_patch_stays_right_against_live_with_ignored_fields() -> None:
    desired, live = scaled(9)
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    live["spec"]["template"]["spec"]["containers"].insert(0, {"name": "istio-proxy",
                                                              "image": "proxy:1"})
    for mode in DriftMode:
        pol = policy(rule(jsonPointers=["/spec/replicas"]), rule(jqPathExpressions=[
            '.spec.template.spec.containers[] | select(.name == "istio-proxy")']), mode=mode)
        result = DIFFER.diff(res(desired), res(live), pol)
        assert result.changed
        patched = jsonpatch.apply_patch(live, list(result.patch))
        assert patched["spec"]["replicas"] == 9
        assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == [
            "istio-proxy", "app"]
        assert patched["spec"]["template"]["spec"]["containers"][1]["image"] == "app:2"
        assert not changed(desired, patched, pol), mode


# -- jq path expressions --------------------------------------------------------------------


SIDECAR = '.spec.template.spec.containers[] | select(.name == "istio-proxy")'


@pytest.mark.parametrize("mode", list(DriftMode))
def test_jq_selects_an_injected_container(mode: DriftMode) -> None:
    desired = deployment()
    live = copy.deepcopy(desired)
    live["spec"]["template"]["spec"]["containers"].insert(0, {"name": "istio-proxy",
                                                              "image": "proxy:1"})
    pol = policy(rule(jqPathExpressions=[SIDECAR]), mode=mode, keyed=False)
    if mode is not DriftMode.MANAGED:
        assert changed(desired, live, policy(mode=mode, keyed=False))
    assert not changed(desired, live, pol)
    applied = respect_ignored(res(desired), res(live), pol).manifest
    names = [c["name"] for c in applied["spec"]["template"]["spec"]["containers"]]
    assert names == ["istio-proxy", "app"]  # by position: where live has it


def test_jq_runtime_errors_select_nothing_in_that_object() -> None:
    desired, live = scaled()
    pol = policy(rule(jqPathExpressions=[".spec.template.spec.initContainers[] | .image"]))
    assert changed(desired, live, pol)  # no initContainers: "Cannot iterate over null"


def test_a_bad_jq_expression_is_an_input_error_naming_the_rule() -> None:
    desired, live = scaled()
    pol = policy(rule(jsonPointers=["/spec/paused"]), rule(jqPathExpressions=[".spec.["]))
    with pytest.raises(InputError, match=r"ignoreDifferences\[1\]: jqPathExpressions '\.spec\.\['"):
        DIFFER.diff(res(desired), res(live), pol)
    with pytest.raises(InputError, match=r"ignoreDifferences\[1\]"):
        explain(res(desired), res(live), pol)
    with pytest.raises(InputError, match=r"ignoreDifferences\[1\]"):
        validate_rules(pol.ignore)
    assert check_expression(".spec.replicas") is None
    assert check_expression("") is not None and check_expression("x" * 5000) is not None
    bad_value = policy(rule(jqPathExpressions=[".spec.replicas + 1"]))
    with pytest.raises(InputError, match=r"ignoreDifferences\[0\].*Invalid path expression"):
        DIFFER.diff(res(desired), res(live), bad_value)


def test_jq_is_bounded_in_time_and_size() -> None:
    runner = JqRunner(timeout=0.5, max_paths=50)
    try:
        start = time.monotonic()
        with pytest.raises(InputError, match=r"rule 3: jqPathExpressions did not finish"):
            runner.paths(("last(range(1e12)) as $x | .a",), ({"a": 1},), "rule 3")
        assert time.monotonic() - start < 5
        with pytest.raises(InputError, match="selects more than 50 paths"):
            runner.paths((".[]",), (list(range(100)),), "rule 4")
        # the worker was restarted after the timeout and still answers
        assert runner.paths((".a", ".b[]"), ({"a": 1, "b": [1, 2]}, {}), "r") == [
            [[("a",)], [("a",)]], [[("b", 0), ("b", 1)], []]]
        small = JqRunner(max_bytes=100)
        with pytest.raises(InputError, match="too large"):
            small.paths((".a",), ({"a": "x" * 200},), "rule 5")
        small.close()
    finally:
        runner.close()


# -- managed fields managers ----------------------------------------------------------------


def test_fields_owned_by_named_managers_are_ignored() -> None:
    desired = deployment()
    live = server_apply(None, desired)
    autoscaled = copy.deepcopy(live)
    autoscaled["spec"]["replicas"] = 6
    ssa.track_update(live, autoscaled, manager="kube-controller-manager",
                     api_version="apps/v1", now=NOW, has_status=True)
    pol = policy(rule(managedFieldsManagers=["kube-controller-manager"]), mode=DriftMode.MANAGED)
    assert changed(desired, autoscaled, policy(mode=DriftMode.MANAGED))
    assert not changed(desired, autoscaled, pol)
    assert respect_ignored(res(desired), res(autoscaled), pol).manifest["spec"]["replicas"] == 6
    other = policy(rule(managedFieldsManagers=["someone-else"]), mode=DriftMode.MANAGED)
    assert changed(desired, autoscaled, other)


def test_respect_leaves_creations_and_unmatched_objects_alone() -> None:
    desired, live = scaled()
    pol = policy(rule(jsonPointers=["/spec/replicas"], name="other"))
    resource = res(desired)
    assert respect_ignored(resource, None, pol) is resource
    assert respect_ignored(resource, res(live), pol) is resource
    assert respect_ignored(resource, res(live), policy()) is resource


def test_keyed_items_are_placed_by_key() -> None:
    desired = deployment()
    desired["spec"]["template"]["spec"]["containers"].append({"name": "b", "image": "b:1"})
    live = copy.deepcopy(desired)
    containers = live["spec"]["template"]["spec"]["containers"]
    containers.reverse()
    containers[0]["image"] = "b:hotfix"
    pol = policy(rule(jqPathExpressions=[
        '.spec.template.spec.containers[] | select(.name == "b") | .image']))
    assert not changed(desired, live, pol)
    applied = respect_ignored(res(desired), res(live), pol).manifest
    assert [(c["name"], c["image"]) for c in applied["spec"]["template"]["spec"]["containers"]] \
        == [("app", "app:1"), ("b", "b:hotfix")]


def test_explanations_name_the_rule() -> None:
    desired, live = scaled()
    pol = policy(rule(jsonPointers=["/spec/paused"]), rule(jsonPointers=["/spec/replicas"]))
    found = [e for e in explain(res(desired), res(live), pol) if e.reason == "ignored"]
    assert [(e.path, e.detail) for e in found] == [
        ("/spec/replicas", "ignored by rule 1 (jsonPointer /spec/replicas)")]


# -- the rules file -------------------------------------------------------------------------


def test_load_ignore_differences(tmp_path: Path) -> None:
    path = tmp_path / "ignore.yaml"
    path.write_text(
        "- group: apps\n  kind: Deployment\n  jsonPointers: [/spec/replicas]\n"
        "- kind: ConfigMap\n  name: generated\n  namespace: prod\n"
        "  jqPathExpressions: ['.data.stamp']\n"
        "- group: '*'\n  kind: '*'\n  managedFieldsManagers: [kube-controller-manager]\n"
    )
    rules = load_ignore_differences(path)
    assert [r.kind for r in rules] == ["Deployment", "ConfigMap", "*"]
    assert rules[0].json_pointers == ("/spec/replicas",)
    assert rules[1].jq_path_expressions == (".data.stamp",) and rules[1].group == ""
    assert rules[2].managed_fields_managers == ("kube-controller-manager",)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_ignore_differences(empty) == ()


@pytest.mark.parametrize(("text", "message"), [
    ("kind: Deployment\n", "expected a YAML list"),
    ("- [unclosed\n", "invalid YAML"),
    ("- group: apps\n", r"entry 0: kind: Field required"),
    ("- kind: A\n- kind: B\n  jsonPointer: [/a]\n", r"entry 1: jsonPointer: Extra inputs"),
    ("- kind: A\n  jsonPointers: [spec/replicas]\n", r"entry 0: jsonPointers 'spec/replicas'"),
    ("- kind: A\n- kind: B\n  jqPathExpressions: ['.a[']\n", r"entry 1: jqPathExpressions '\.a\['"),
])
def test_bad_rule_files_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        load_ignore_differences(path)
    assert str(caught.value).startswith(f"{path}: ")
    with pytest.raises(InputError, match="cannot read"):
        load_ignore_differences(tmp_path / "missing.yaml")
