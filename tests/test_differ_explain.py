"""Explainable drift: why each field that differs is not drift; null equals empty; masks."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from differ_support import NOW, server_apply
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.explain import Explanation, explanations_json, render_explanations
from gitops.differs.lists import builtin_list_types
from gitops.differs.structural import StructuralDiffer, explain
from gitops.masking import MASK, MASK_CHANGED, mask_patch, mask_secret, mask_secret_pair
from gitops.model import DriftMode, DriftPolicy, IgnoreDifference, Resource
from gitops.testing.kube import apply as ssa

DATA = Path(__file__).parent / "data" / "differ"
DIFFER = StructuralDiffer()
TABLE = builtin_list_types()
SUBSET = DriftPolicy(list_types=TABLE)
MANAGED = DriftPolicy(DriftMode.MANAGED, field_manager="gitops", list_types=TABLE)
EXACT = DriftPolicy(DriftMode.EXACT)


def res(manifest: dict[str, Any]) -> Resource:
    return Resource.from_manifest(manifest)


def reasons(desired: dict[str, Any], live: dict[str, Any], policy: DriftPolicy) -> dict[str, str]:
    return {e.path: e.reason for e in explain(res(desired), res(live), policy)}


def load(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((DATA / name).read_text())
    return found


# -- null and empty ---------------------------------------------------------------------------


def test_argo_cd_null_secret_data() -> None:
    """Argo CD's TestNullSecretData (gitops-engine pkg/diff/diff_test.go; data recorded from
    a real cluster, see tests/data/differ/PROVENANCE.md): desired ``smtp-password: ""``,
    live ``null``; expected: not modified."""
    config, live = load("argo-wordpress-config.json"), load("argo-wordpress-live.json")
    assert live["data"]["smtp-password"] is None and config["data"]["smtp-password"] == ""
    for policy in (DriftPolicy(), SUBSET, MANAGED):
        assert not DIFFER.diff(res(config), res(live), policy).changed
    config["metadata"]["namespace"] = "argocd"  # what the engine places
    assert not DIFFER.diff(res(config), res(live), EXACT).changed
    assert reasons(config, live, SUBSET)["/data/smtp-password"] == "null-equals-empty"


@pytest.mark.parametrize("section", ["data", "binaryData"])
def test_config_map_null_equals_empty(section: str) -> None:
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "c", "namespace": "prod"},
                               section: {"a": "", "b": "x"}}
    live = copy.deepcopy(desired)
    live[section]["a"] = None
    for policy in (SUBSET, EXACT):
        assert not DIFFER.diff(res(desired), res(live), policy).changed
    live[section]["b"] = None
    assert DIFFER.diff(res(desired), res(live), EXACT).changed


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_mask_tells_absent_null_and_empty_from_set() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"set": b64("hunter2"), "empty": "", "null": None}}
    masked = mask_secret(secret)
    assert masked["data"] == {"set": MASK, "empty": "", "null": None}
    assert "absent" not in masked["data"]
    assert mask_secret({**secret, "data": None})["data"] is None
    desired, live = mask_secret_pair(
        {**secret, "data": {"set": "", "empty": b64("now set"), "null": None}}, secret)
    assert desired["data"] == {"set": "", "empty": MASK_CHANGED, "null": None}
    assert live["data"] == {"set": MASK, "empty": "", "null": None}
    assert mask_patch([{"op": "add", "path": "/data/x", "value": ""},
                       {"op": "add", "path": "/data/y", "value": "c2VjcmV0"}]) == (
        {"op": "add", "path": "/data/x", "value": ""}, {"op": "add", "path": "/data/y",
                                                        "value": MASK})


def test_a_secret_emptied_shows_as_a_change_without_its_value() -> None:
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret",
                               "metadata": {"name": "s", "namespace": "p"}, "data": {"token": ""}}
    live = copy.deepcopy(desired)
    live["data"]["token"] = b64("hunter2")
    result = DIFFER.diff(res(desired), res(live), SUBSET)
    assert result.changed
    assert "hunter2" not in result.text and b64("hunter2") not in result.text
    assert f"-  token: {MASK}\n" in result.text and "+  token: ''\n" in result.text


# -- explanations ---------------------------------------------------------------------------


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "app", "image": "app:1",
                 "env": [{"name": "A", "value": "a"}, {"name": "B", "value": "b"}],
                 "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "log", "image": "log:1"}]}}},
    }


def test_every_reason_is_given_where_it_applies() -> None:
    desired = deployment()
    live = server_apply(None, desired)
    injected = copy.deepcopy(live)
    containers = injected["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "istio-proxy", "image": "proxy:1"})
    containers[1]["env"].reverse()
    containers[1]["resources"]["limits"].update(cpu="0.5", memory="1024Mi")
    ssa.track_update(live, injected, manager="istio-injector", api_version="apps/v1",
                     now=NOW, has_status=True)
    injected["spec"]["replicas"] = 4
    policy = DriftPolicy(DriftMode.MANAGED, field_manager="gitops", list_types=TABLE,
                         ignore=(IgnoreDifference.model_validate({
                             "group": "apps", "kind": "Deployment",
                             "jsonPointers": ["/spec/replicas"]}),))
    assert not DIFFER.diff(res(desired), res(injected), policy).changed
    found = {e.path: e for e in DIFFER.explain(res(desired), res(injected), policy)}
    pod = "/spec/template/spec/containers"
    assert found["/spec/replicas"].reason == "ignored"
    assert found["/spec/replicas"].detail == "ignored by rule 0 (jsonPointer /spec/replicas)"
    assert found[f"{pod}/0"].reason == "other-manager"
    assert found[f"{pod}/0"].detail.startswith("owned by istio-injector (Update)")
    assert found[f"{pod}/1/env"].reason == "keyed-list-order"
    assert "name=A, name=B" in found[f"{pod}/1/env"].detail
    assert found[f"{pod}/1/resources/limits/cpu"].reason == "equal-quantity"
    assert found[f"{pod}/1/resources/limits/cpu"].detail == \
        'desired "500m" and live "0.5" are the same quantity'
    assert found[f"{pod}/1/resources/limits/memory"].reason == "equal-quantity"
    assert found[f"{pod}/1/imagePullPolicy"].reason == "defaulted"  # a default nobody owns
    assert found["/metadata/managedFields"].reason == "server-owned"
    assert found["/metadata/uid"].reason == "server-owned"
    assert found["/spec/progressDeadlineSeconds"].reason == "defaulted"
    assert f"{pod}/1/image" not in found  # equal as written: nothing to explain


def test_drift_is_not_explained_away() -> None:
    desired = deployment()
    live = server_apply(None, desired)
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    del desired["spec"]["template"]["spec"]["containers"][1]  # ours: goes
    assert DIFFER.diff(res(desired), res(live), MANAGED).changed
    found = reasons(desired, live, MANAGED)
    pod = "/spec/template/spec/containers"
    assert f"{pod}/0/image" not in found and f"{pod}/1" not in found
    assert found[f"{pod}/0/imagePullPolicy"] == "defaulted"


def test_argo_example3_explained_in_subset_mode() -> None:
    config, live = load("argo-deployment-config.json"), load("argo-deployment-live.json")
    found = reasons(config, live, SUBSET)
    pod = "/spec/template/spec/containers/0"
    assert found[f"{pod}/env/0"] == "defaulted"  # VAR2, another writer's (no managedFields)
    assert found[f"{pod}/ports/0/protocol"] == "defaulted"
    assert found[f"{pod}/resources"] == "null-equals-empty"  # live {} where desired has none
    assert found["/status"] == "server-owned"
    assert "/spec/template/metadata/creationTimestamp" not in found  # live null: nothing there


def test_exact_mode_explains_what_it_does_not_report() -> None:
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c", "namespace": "p", "labels": {}}, "data": {"a": "1"}}
    live = copy.deepcopy(desired)
    del live["metadata"]["labels"]
    live["metadata"]["uid"] = "u"
    assert not DIFFER.diff(res(desired), res(live), EXACT).changed
    assert reasons(desired, live, EXACT) == {"/metadata/uid": "server-owned",
                                             "/metadata/labels": "null-equals-empty"}


# Marked, so a value can never be a mere substring of the fixed text around it (a value
# "kubern" is in every "kubectl.kubernetes.io" path without being shown).
secret_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6,
                        max_size=20).map(lambda v: f"q9zx{v}")


@given(values=st.lists(secret_values, min_size=2, max_size=4, unique=True))
def test_explanations_never_show_secret_values(values: list[str]) -> None:
    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "p"},
               "stringData": {f"k{i}": v for i, v in enumerate(values[:-1])}}
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "p",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                desired)}}, "data": {f"k{i}": b64(v) for i, v in enumerate(values)}}
    shown = json.dumps(explanations_json(explain(res(desired), res(live), SUBSET)))
    assert "k" + str(len(values) - 1) in shown  # the extra key is explained...
    for value in values:
        assert value not in shown and b64(value) not in shown  # ...never its value


def test_text_and_json_forms() -> None:
    items = [Explanation("/spec/replicas", "ignored", "ignored by rule 0 (jsonPointer /spec/"
                         "replicas)"), Explanation("/status", "server-owned", "set by the API")]
    assert render_explanations(items, "Deployment.apps/prod/web") == (
        "Deployment.apps/prod/web:\n"
        "  /spec/replicas  ignored: ignored by rule 0 (jsonPointer /spec/replicas)\n"
        "  /status         server-owned: set by the API\n")
    assert render_explanations([]) == ""
    assert explanations_json(items)[1] == {"path": "/status", "reason": "server-owned",
                                           "detail": "set by the API"}
    assert explain(res(deployment()), None) == []
