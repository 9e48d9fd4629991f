"""The Application CRD: structural by Kubernetes' rules, true to the model, accepted by kubectl."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from operator_support import kubectl, needs_kubectl, operator_emulator
from structural_schema import instance_problems, structural_problems

from gitops.apps import Application, application_json_schema, parse_duration
from gitops.images.controller import image_crds
from gitops.operator.crd import (
    CRD_NAME,
    POSITIVE_DURATION_PATTERN,
    all_crds,
    application_crd,
    application_schema,
    crds_yaml,
    status_schema,
)
from gitops.testing.kube import KubeEmulator

__all__ = ["operator_emulator"]  # the fixture, imported for pytest

EXAMPLE: dict[str, Any] = {
    "apiVersion": "gitops.dev/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "shop", "namespace": "gitops"},
    "spec": {
        "source": {"url": "git+https://host/repo.git@main#path=apps/shop", "options": {"depth": 1}},
        "target": {"url": "k8s:", "options": {"qps": 20.5, "nested": {"a": [1, "b"]}}},
        "interval": "1m",
        "prune": True,
        "selfHeal": True,
        "suspend": False,
        "wait": {"timeout": "5m"},
        "retry": {"limit": 5, "backoff": "5s", "maxBackoff": "3m"},
        "dependsOn": ["infra", "base/crds"],
        "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
        "substitute": {"REGION": "eu-west-1"},
    },
}

STATUS: dict[str, Any] = {
    "observedGeneration": 3,
    "sync": "Synced",
    "health": "Healthy",
    "lastAppliedRevision": "main@sha1:0123abcd",
    "lastAttemptedRevision": "main@sha1:0123abcd",
    "lastSyncTime": "2026-01-02T03:04:05Z",
    "message": "applied 10 objects",
    "suspended": False,
    "resources": 10,
    "counts": {"created": 1, "updated": 2, "deleted": 0, "unchanged": 7},
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "Synced", "message": "",
         "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 3},
        {"type": "Reconciling", "status": "False", "reason": "Idle", "message": "",
         "lastTransitionTime": "2026-01-02T03:04:05Z"},
    ],
    "history": [
        {"revision": f"main@sha1:{i:08x}", "time": "2026-01-02T03:04:05Z", "result": "Succeeded",
         "trigger": "interval", "message": ""} for i in range(10)
    ],
}


def object_problems(obj: dict[str, Any]) -> list[str]:
    """``obj`` checked against the CRD schema; metadata other than name is the server's."""
    schema = copy.deepcopy(application_schema())
    schema["properties"]["metadata"]["x-kubernetes-preserve-unknown-fields"] = True
    return instance_problems(schema, obj)


# -- structure ------------------------------------------------------------------------------------


def test_the_schema_is_structural() -> None:
    assert structural_problems(application_schema()) == []


@pytest.mark.parametrize(("schema", "problem"), [
    ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "$ref is not supported"),
    ({"type": "object", "properties": {"a": {"description": "no type"}}}, "must not be empty"),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}},
                                             "additionalProperties": {"type": "string"}}}},
     "mutual exclusive"),
    ({"type": "object", "additionalProperties": {"type": "string"}}, "must not be used at the root"),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "namespace": {"type": "string"}}}}}, "other than name and generateName"),
    ({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}}},
     "must be empty to be structural"),
    ({"type": "object", "properties": {"a": {"type": "string", "const": "x"}}}, "unknown field 'const'"),
    ({"type": "object", "properties": {"a": {"type": "string", "default": 5}}}, "default does not validate"),
    ({"type": "object", "properties": {"a": {"type": "array"}}}, "items: must be specified"),
    ({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
                                             "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}},
     "must not be empty if x-kubernetes-list-type is map"),
    ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
     "cannot be null"),
])
def test_the_checker_finds_what_the_api_server_refuses(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


def test_names_scope_version_subresource_and_columns() -> None:
    crd = application_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == CRD_NAME == "applications.gitops.dev"
    assert (spec["group"], spec["scope"]) == ("gitops.dev", "Namespaced")
    assert spec["names"] == {"kind": "Application", "listKind": "ApplicationList", "plural": "applications",
                             "singular": "application", "shortNames": ["gapp", "gapps"]}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"].upper(), c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [("SYNC", "string", ".status.sync"), ("HEALTH", "string", ".status.health"),
                       ("REVISION", "string", ".status.lastAppliedRevision"),
                       ("AGE", "date", ".metadata.creationTimestamp")]


def test_crds_yaml_is_the_crd() -> None:
    document, *images, appsets = list(yaml.safe_load_all(crds_yaml()))
    assert document == application_crd()
    assert images == image_crds()  # tests/test_images_operator.py checks those
    assert appsets["metadata"]["name"] == "applicationsets.gitops.dev"


# -- true to the model ----------------------------------------------------------------------------


def _model_fields(node: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    for branch in node.get("anyOf", []):
        if branch.get("type") != "null":
            return _model_fields(branch, defs, prefix)
    out = set()
    for name, sub in (node.get("properties") or {}).items():
        out.add(prefix + name)
        out |= _model_fields(sub, defs, prefix + name + ".")
    if "items" in node:
        out |= _model_fields(node["items"], defs, prefix + "[].")
    return out


def _crd_fields(node: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for name, sub in (node.get("properties") or {}).items():
        out.add(prefix + name)
        out |= _crd_fields(sub, prefix + name + ".")
    if "items" in node:
        out |= _crd_fields(node["items"], prefix + "[].")
    return out


def test_every_field_of_the_model_is_in_the_crd_and_no_other() -> None:
    model = application_json_schema()
    expected = _model_fields(model["properties"]["spec"], model["$defs"])
    assert _crd_fields(application_schema()["properties"]["spec"]) == expected
    assert {"source.url", "target.options", "selfHeal", "wait.timeout", "retry.maxBackoff",
            "ignoreDifferences.[].jsonPointers", "substitute"} <= expected


def test_optional_fields_are_nullable_and_options_free_form() -> None:
    spec = application_schema()["properties"]["spec"]["properties"]
    assert spec["wait"]["nullable"] is True and spec["wait"]["type"] == "object"
    for side in ("source", "target"):
        options = spec[side]["properties"]["options"]
        assert options == {"description": options["description"], "type": "object",
                           "x-kubernetes-preserve-unknown-fields": True}
    assert spec["substitute"]["additionalProperties"] == {"type": "string"}


def test_defaults_are_the_models() -> None:
    """A server defaulting with the CRD fills in exactly what the model assumes."""
    spec = application_schema()["properties"]["spec"]
    minimal = Application.from_object({"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
                                       "metadata": {"name": "a"},
                                       "spec": {"source": {"url": "dir:x"}, "target": {"url": "k8s:"},
                                                "wait": {}}}).to_dict()["spec"]
    defaults = {}
    for name, prop in spec["properties"].items():
        if "default" in prop:
            defaults[name] = prop["default"]
        for sub, subprop in (prop.get("properties") or {}).items():
            if "default" in subprop:
                defaults[f"{name}.{sub}"] = subprop["default"]
    assert defaults == {"interval": "1m", "prune": False, "selfHeal": True,
                        "suspend": False, "wait.timeout": "5m", "retry.limit": 5, "retry.backoff": "5s",
                        "retry.maxBackoff": "3m"}
    for key, value in defaults.items():
        field, _, sub = key.partition(".")
        model_value = minimal[field][sub] if sub else minimal[field]
        if isinstance(value, str):  # durations: the same time, whatever the spelling
            assert parse_duration(value) == parse_duration(model_value), key
        else:
            assert value == model_value, key


def test_the_metadata_name_is_a_dns_label_as_the_model_wants() -> None:
    name = application_schema()["properties"]["metadata"]["properties"]["name"]
    assert instance_problems(name, "shop-1") == []
    assert instance_problems(name, "shop.example")  # a subdomain: fine for Kubernetes, not for us
    assert instance_problems(name, "a" * 64)


# -- documents ------------------------------------------------------------------------------------


def test_the_example_application_and_a_full_status_validate() -> None:
    assert object_problems({**EXAMPLE, "status": STATUS}) == []
    Application.from_object(EXAMPLE)  # and the model agrees


@pytest.mark.parametrize(("change", "where"), [
    ({"interval": "5 minutes"}, ".spec.interval"),
    ({"interval": "-5m"}, ".spec.interval"),
    ({"retry": {"backoff": "s"}}, ".spec.retry.backoff"),
    ({"selfHeal": "yes"}, ".spec.selfHeal"),
    ({"sefHeal": True}, ".spec.sefHeal"),
    ({"retry": {"limit": 1001}}, ".spec.retry.limit"),
    ({"source": {"options": {}}}, ".spec.source.url"),
    ({"ignoreDifferences": [{"group": "apps"}]}, ".spec.ignoreDifferences[0].kind"),
    ({"substitute": {"A": 1}}, ".spec.substitute.A"),
])
def test_invalid_applications_are_refused_with_the_field(change: dict[str, Any], where: str) -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["spec"].update(change)
    problems = object_problems(doc)
    assert problems and all(p.startswith(where) for p in problems), problems


def test_status_refuses_an_eleventh_sync_and_unknown_values() -> None:
    schema = status_schema()
    history = [*STATUS["history"], STATUS["history"][0]]
    assert any("at most 10" in p for p in instance_problems(schema, {"history": history}))
    assert instance_problems(schema, {"sync": "Drifted"})
    assert instance_problems(schema, {"conditions": [{"type": "Ready", "status": "Yes", "reason": "R",
                                                      "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    assert instance_problems(schema, {"conditions": [{"type": "Ready", "status": "True"}]})
    assert instance_problems(schema, {"lastAppliedRevision": None, "lastSyncTime": None}) == []


DURATION_TEXT = st.text(alphabet="0123456789.+-nsuµmh ", max_size=12)


@given(DURATION_TEXT)
def test_the_duration_pattern_admits_exactly_the_positive_go_durations(text: str) -> None:
    """Whatever the pattern admits Go parses as more than zero or as zero (``0s``, the one
    thing a pattern cannot rule out); whatever Go parses as positive and unsigned it admits."""
    try:
        nanos: int | None = parse_duration(text)
    except ValueError:
        nanos = None
    matches = re.search(POSITIVE_DURATION_PATTERN, text) is not None
    if matches:
        assert nanos is not None and nanos >= 0
    if nanos is not None and nanos > 0 and not text.startswith("-"):
        assert matches, text


# -- the real kubectl against the emulator ---------------------------------------------------------


@needs_kubectl
def test_kubectl_installs_the_crd_and_serves_applications(operator_emulator: KubeEmulator) -> None:
    crd = json.loads(kubectl(operator_emulator, "get", "crd", CRD_NAME, "-o", "json").stdout)
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == application_schema()
    # applying it again changes nothing (what `gitops crds | kubectl apply` does on upgrade)
    again = kubectl(operator_emulator, "apply", "--server-side", "-f", "-", stdin=crds_yaml())
    assert "serverside-applied" in again.stdout

    document = yaml.safe_dump({**EXAMPLE, "metadata": {"name": "shop", "namespace": "default"}})
    kubectl(operator_emulator, "apply", "--server-side", "-f", "-", stdin=document)
    stored = json.loads(kubectl(operator_emulator, "get", "gapp", "shop", "-o", "json").stdout)
    assert stored["spec"] == EXAMPLE["spec"]
    assert Application.from_object(stored).key == "default/shop"
    names = kubectl(operator_emulator, "get", "applications.gitops.dev", "-o", "name").stdout.split()
    assert names == ["application.gitops.dev/shop"]


@needs_kubectl
def test_kubectl_get_shows_the_printer_columns(operator_emulator: KubeEmulator) -> None:
    document = yaml.safe_dump({**EXAMPLE, "metadata": {"name": "cols", "namespace": "default"}})
    kubectl(operator_emulator, "apply", "--server-side", "-f", "-", stdin=document)
    code, _ = operator_emulator.request(
        "PATCH", "/apis/gitops.dev/v1alpha1/namespaces/default/applications/cols/status",
        {"status": STATUS}, content_type="application/merge-patch+json")
    assert code == 200
    header, *rows = kubectl(operator_emulator, "get", "applications", "cols").stdout.splitlines()
    if header.split() == ["NAME", "AGE"]:
        pytest.skip("the emulator does not serve additionalPrinterColumns yet (emulator branch)")
    assert header.split() == ["NAME", "SYNC", "HEALTH", "REVISION", "AGE"]
    assert rows[0].split()[:4] == ["cols", "Synced", "Healthy", "main@sha1:0123abcd"]


@needs_kubectl
def test_the_server_refuses_an_invalid_application(operator_emulator: KubeEmulator) -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["metadata"] = {"name": "bad", "namespace": "default"}
    doc["spec"]["interval"] = "5 minutes"
    done = kubectl(operator_emulator, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(doc),
                   check=False)
    if done.returncode == 0:
        kubectl(operator_emulator, "delete", "application", "bad")
        pytest.skip("the emulator does not validate custom resources against their CRD schema "
                    "(docs/kubernetes-emulator.md, Known differences)")
    assert "spec.interval" in done.stderr


def test_every_crd_the_controller_serves_is_structural_with_a_status_subresource() -> None:
    crds = all_crds()
    assert [c["metadata"]["name"] for c in crds] == [
        "applications.gitops.dev", "imagepolicies.gitops.dev",
        "imageupdateautomations.gitops.dev", "applicationsets.gitops.dev"]
    for crd in crds:
        version = crd["spec"]["versions"][0]
        assert structural_problems(version["schema"]["openAPIV3Schema"]) == [], \
            crd["metadata"]["name"]
        assert version["subresources"]["status"] == {}
