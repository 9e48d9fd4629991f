"""Flux postBuild substitution: envsubst's forms, strict mode, the opt-out, YAML typing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import InputError, ManifestError
from gitops.model import Resource
from gitops.renderers.substitute import SUBSTITUTE_KEY, substitute, substitute_string


def resource(manifest: dict[str, Any], origin: str = "apps/web.yaml#1") -> Resource:
    return Resource.from_manifest(manifest, origin)


def config_map(data: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", **metadata}, "data": data}


@pytest.mark.parametrize("text, variables, expected", [
    ("${A}", {"A": "x"}, "x"),
    ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
    ("${A:=dev}", {}, "dev"),
    ("${A:=dev}", {"A": ""}, "dev"),          # envsubst: unset *or empty*
    ("${A:=dev}", {"A": "prod"}, "prod"),
    ("${A:-dev}", {}, "dev"),
    ("${A=dev}", {}, "dev"),
    ("${A:=${B}-x}", {"B": "b"}, "b-x"),     # defaults nest
    ("$${A}", {"A": "x"}, "${A}"),           # escaped
    ("cost: $$5 and $HOME", {}, "cost: $5 and $HOME"),
    ("${A:2}", {"A": "abcdef"}, "cdef"),
    ("${A:1:3}", {"A": "abcdef"}, "bcd"),
    ("${A/b/B}", {"A": "abab"}, "aBab"),
    ("${A//b/B}", {"A": "abab"}, "aBaB"),
    ("${A/#a/X}", {"A": "abab"}, "Xbab"),
    ("${A/%b/X}", {"A": "abab"}, "abaX"),
    ("${A//\\//-}", {"A": "a/b/c"}, "a-b-c"),
    ("${#A}", {"A": "four"}, "4"),
    ("${A^^}-${B,}", {"A": "up", "B": "Down"}, "UP-down"),
    ("a${A}b${B}c", {"A": "1", "B": "2"}, "a1b2c"),
])
def test_envsubst_forms(text: str, variables: dict[str, str], expected: str) -> None:
    assert substitute_string(text, variables) == expected


@pytest.mark.parametrize("text, problem", [
    ("${MISSING}", "variable MISSING is not set and has no default"),
    ("${#MISSING}", "variable MISSING is not set"),
    ("${MISSING/a/b}", "variable MISSING is not set"),
    ("${A:=${MISSING}}", "variable MISSING is not set"),
    ("${A", "lacks its closing"),
    ("${}", "no valid variable name"),
    ("${A-x}", "unexpected character"),
    ("${A#x}", "pattern trimming is not supported"),
    ("${A:+x}", "is not supported"),
])
def test_strict_mode_and_malformed_expressions(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        substitute_string(text, {"A": "a"})


def test_objects_are_substituted_with_yaml_types_as_flux_rereads_them() -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-${ENV}", "labels": {"env": "${ENV:=dev}",
                                                       "id": "${quote}${ID}${quote}"}},
        "spec": {"replicas": "${REPLICAS}", "paused": "${PAUSED}",
                 "template": {"spec": {"containers": [{
                     "name": "web", "image": "nginx:${TAG}",
                     "args": ["--level=${LEVEL:-info}", "echo $$HOME ${ENV}"],
                     "env": [{"name": "PORT", "value": "${PORT}"},
                             {"name": "SCRIPT", "value": "a: ${ENV}"}]}]}}},
    }
    original = copy.deepcopy(deployment)
    (out,) = substitute([resource(deployment)], {
        "ENV": "prod", "REPLICAS": "3", "PAUSED": "false", "quote": '"', "ID": "123",
        "TAG": "1.26", "PORT": "8080"})
    assert deployment == original  # the input is never mutated
    assert out.key.name == "web-prod"
    manifest = out.manifest
    assert manifest["metadata"]["labels"] == {"env": "prod", "id": "123"}  # "${quote}" trick
    assert manifest["spec"]["replicas"] == 3 and manifest["spec"]["paused"] is False
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26"
    assert container["args"] == ["--level=info", "echo $HOME prod"]
    # a plain scalar becomes a number, as after Flux's re-read; one kustomize must quote
    # ("a: x" would be a mapping) stays a string
    assert container["env"] == [{"name": "PORT", "value": 8080},
                                {"name": "SCRIPT", "value": "a: prod"}]


def test_an_empty_value_makes_a_plain_scalar_null_as_in_flux() -> None:
    (out,) = substitute([resource(config_map({"a": "${EMPTY}", "b": "x${EMPTY}"}))], {"EMPTY": ""})
    assert out.manifest["data"] == {"a": None, "b": "x"}


def test_unchanged_resources_are_returned_as_they_are() -> None:
    plain = resource(config_map({"a": "no variables here", "b": 1}))
    assert substitute([plain], {"A": "x"})[0] is plain


def test_keys_are_substituted_and_stay_strings() -> None:
    (out,) = substitute([resource(config_map({"${KEY}": "v", "n${KEY}": "w"}))], {"KEY": "1"})
    assert out.manifest["data"] == {"1": "v", "n1": "w"}
    with pytest.raises(ManifestError, match="two keys of one mapping equal"):
        substitute([resource(config_map({"${A}": "1", "x": "2"}))], {"A": "x"})


@pytest.mark.parametrize("where", ["annotations", "labels"])
def test_objects_can_opt_out(where: str) -> None:
    opted = resource(config_map({"script": "echo ${HOME}"}, **{where: {SUBSTITUTE_KEY: "disabled"}}))
    assert substitute([opted], {"A": "x"})[0] is opted
    other = resource(config_map({"script": "echo ${HOME}"}, **{where: {SUBSTITUTE_KEY: "enabled"}}))
    with pytest.raises(ManifestError, match="HOME"):
        substitute([other], {"A": "x"})


def test_an_undefined_variable_names_the_file_object_field_and_variable() -> None:
    res = resource(config_map({"url": "https://${HOST}/x"}), origin="apps/cm.yaml#2.items[1]")
    with pytest.raises(ManifestError) as info:
        substitute([res], {"OTHER": "value-never-shown"})
    assert info.value.path == "apps/cm.yaml" and info.value.document == 2
    assert str(info.value) == (
        "apps/cm.yaml (document 2): items[1]: ConfigMap/settings: data.url: "
        "variable HOST is not set and has no default")


def test_values_never_appear_in_errors() -> None:
    secret = "Sup3r_S3cret_Value"
    cases = [
        config_map({}, namespace="${NS}"),  # invalid namespace after substitution
        config_map({"a": "${SECRET} ${MISSING}"}),
        config_map({"a": "${SECRET}", "b": "${BROKEN"}),
    ]
    for manifest in cases:
        with pytest.raises(ManifestError) as info:
            substitute([resource(manifest)], {"SECRET": secret, "NS": secret})
        assert secret not in str(info.value), str(info.value)
    with pytest.raises(InputError) as bad:
        substitute([], {"NOT-A-NAME": secret})
    assert "NOT-A-NAME" in str(bad.value) and secret not in str(bad.value)


def test_deeply_nested_defaults_are_an_error_naming_the_file_not_a_crash() -> None:
    # A hostile manifest must not exhaust Python's stack (a RecursionError is no ManifestError).
    deep = "${A:=" * 5000 + "x" + "}" * 5000
    with pytest.raises(ManifestError, match="nest more than") as info:
        substitute([resource(config_map({"a": deep}))], {"B": "1"})
    assert info.value.path == "apps/web.yaml"
    shallow = "${A:=" * 8 + "x" + "}" * 8
    assert substitute_string(shallow, {}) == "x"


def test_newlines_are_removed_from_values_as_flux_does() -> None:
    (out,) = substitute([resource(config_map({"a": "${A}"}))], {"A": "line1\nline2"})
    assert out.manifest["data"]["a"] == "line1line2"


@given(st.text(alphabet=st.characters(blacklist_characters="\n\x00", blacklist_categories=["Cs"]),
               max_size=40))
def test_any_value_is_inserted_verbatim_into_text(value: str) -> None:
    assert substitute_string("pre-${V}-post", {"V": value}) == f"pre-{value}-post"


@given(st.text(alphabet=st.characters(blacklist_characters="$", blacklist_categories=["Cs"]),
               max_size=60))
def test_text_without_dollars_is_left_alone(text: str) -> None:
    res = resource(config_map({"k": text}))
    assert substitute([res], {"V": "x"})[0] is res
