"""Secret values never appear in diffs or patches, yet a changed value is visible."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.structural import StructuralDiffer
from gitops.masking import (
    LAST_APPLIED_ANNOTATION,
    MASK,
    MASK_CHANGED,
    is_secret,
    mask_patch,
    mask_secret,
    mask_secret_pair,
)
from gitops.model import Diff, Resource

DIFFER = StructuralDiffer()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(
    data: dict[str, str] | None = None, string_data: dict[str, str] | None = None
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "type": "Opaque",
    }
    if data is not None:
        manifest["data"] = {key: b64(value) for key, value in data.items()}
    if string_data is not None:
        manifest["stringData"] = dict(string_data)
    return manifest


def served(manifest: dict[str, Any]) -> dict[str, Any]:
    """A live Secret as the API server returns it: data only, plus kubectl's annotation."""
    live = copy.deepcopy(manifest)
    data = dict(live.get("data") or {})
    data.update({key: b64(value) for key, value in live.pop("stringData", {}).items()})
    live["data"] = data
    live["metadata"]["uid"] = "u-1"
    live["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(manifest)}
    return live


def diff(desired: dict[str, Any], live: dict[str, Any] | None) -> Diff:
    return DIFFER.diff(
        Resource.from_manifest(desired), None if live is None else Resource.from_manifest(live)
    )


def shown(result: Diff) -> str:
    return result.text + repr(result.patch)


def assert_hidden(output: str, *values: str) -> None:
    for value in values:
        assert value not in output
        assert b64(value) not in output


# -- mask_secret and friends ---------------------------------------------------------------


def test_is_secret_for_any_group() -> None:
    assert is_secret(secret())
    assert is_secret({**secret(), "apiVersion": "example.com/v1"})  # masking more is safe
    assert not is_secret({"apiVersion": "v1", "kind": "ConfigMap"})


def test_mask_secret_masks_every_value() -> None:
    manifest = served(secret({"user": "admin"}, {"password": "hunter2"}))
    manifest["stringData"] = {"token": "t0k3n"}
    before = copy.deepcopy(manifest)
    masked = mask_secret(manifest)
    assert manifest == before
    assert masked["data"] == {"user": MASK, "password": MASK}
    assert masked["stringData"] == {"token": MASK}
    assert masked["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] == MASK
    assert masked["metadata"]["name"] == "db"
    assert_hidden(repr(masked), "admin", "hunter2", "t0k3n")


def test_mask_secret_hides_malformed_sections() -> None:
    manifest = secret()
    manifest["data"] = "c2VjcmV0"
    manifest["stringData"] = ["secret"]
    assert mask_secret(manifest)["data"] == MASK
    assert mask_secret(manifest)["stringData"] == MASK


def test_mask_secret_leaves_other_kinds_alone() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "b"},
    }
    assert mask_secret(config) is config


def test_mask_secret_pair_marks_changed_values() -> None:
    desired = secret({"same": "a", "changed": "new", "added": "x"})
    live = secret({"same": "a", "changed": "old", "gone": "y"})
    masked_desired, masked_live = mask_secret_pair(desired, live)
    assert masked_desired["data"] == {"same": MASK, "changed": MASK_CHANGED, "added": MASK}
    assert masked_live["data"] == {"same": MASK, "changed": MASK, "gone": MASK}
    assert len(MASK) != len(MASK_CHANGED)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("/data/password", "aHVudGVyMg==", MASK),
        ("/stringData/password", "hunter2", MASK),
        ("/data", {"a": "YQ==", "b": "Yg=="}, {"a": MASK, "b": MASK}),
        ("/data", "YQ==", MASK),
        ("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", "{}", MASK),
        (
            "/metadata/annotations",
            {LAST_APPLIED_ANNOTATION: "{}", "x": "y"},
            {LAST_APPLIED_ANNOTATION: MASK, "x": "y"},
        ),
        ("/metadata/labels/app", "web", "web"),
        ("/type", "Opaque", "Opaque"),
        ("", {"kind": "Secret", "data": {"a": "YQ=="}}, {"kind": "Secret", "data": {"a": MASK}}),
    ],
)
def test_mask_patch(path: str, value: Any, expected: Any) -> None:
    op = {"op": "replace", "path": path, "value": value}
    assert mask_patch([op]) == ({"op": "replace", "path": path, "value": expected},)


# -- the differ never shows a Secret value ---------------------------------------------------


def test_string_data_compares_with_data() -> None:
    desired = secret({"user": "admin"}, {"password": "hunter2"})
    assert not diff(desired, served(desired)).changed
    assert not diff(served(desired), desired).changed


def test_string_data_wins_over_data() -> None:
    desired = secret({"password": "ignored"}, {"password": "hunter2"})
    live = served(secret({"password": "hunter2"}))
    assert not diff(desired, live).changed


def test_data_compares_as_decoded_bytes() -> None:
    desired = secret()
    desired["data"] = {"cert": "aHVu\ndGVy\nMg=="}  # wrapped base64 as in a YAML block
    live = served(secret({"cert": "hunter2"}))
    assert not diff(desired, live).changed


def test_other_secret_kinds_are_not_normalized_but_masked() -> None:
    desired = {**secret(string_data={"password": "hunter2"}), "apiVersion": "example.com/v1"}
    live = {**secret({"password": "hunter2"}), "apiVersion": "example.com/v1"}
    result = diff(desired, live)
    assert result.changed
    assert_hidden(shown(result), "hunter2")


def test_changed_unchanged_and_added_values_are_masked() -> None:
    desired = secret({"user": "admin"}, {"password": "hunter2", "token": "t0k3n-new"})
    live = served(secret({"user": "admin", "password": "s3cr3t-old", "extra": "l1ve-only"}))
    result = diff(desired, live)
    assert result.changed
    assert_hidden(shown(result), "admin", "hunter2", "t0k3n-new", "s3cr3t-old", "l1ve-only")
    assert f"-  password: {MASK}" in result.text
    assert f"+  password: {MASK_CHANGED}" in result.text
    assert f"+  token: {MASK}" in result.text
    assert "user" not in [
        line[1:].split(":")[0].strip() for line in result.text.splitlines() if line[:1] in "+-"
    ]
    assert {op["path"] for op in result.patch} == {"/data/password", "/data/token"}
    assert all(op["value"] == MASK for op in result.patch)


def test_secret_without_live_data_is_masked() -> None:
    desired = secret({"user": "admin"}, {"password": "hunter2"})
    live = secret()
    result = diff(desired, live)
    assert result.patch == (
        {"op": "add", "path": "/data", "value": {"user": MASK, "password": MASK}},
    )
    assert_hidden(shown(result), "admin", "hunter2")


def test_new_secret_is_masked() -> None:
    desired = secret({"user": "admin"}, {"password": "hunter2"})
    desired["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(desired)}
    result = diff(desired, None)
    assert result.changed
    assert "+  name: db" in result.text
    assert_hidden(shown(result), "admin", "hunter2")


SECRET_VALUES = st.text(min_size=1, max_size=12).map(lambda s: f"s3cr3t-{s}")


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), SECRET_VALUES, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), SECRET_VALUES, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "e"]), SECRET_VALUES, max_size=3),
    st.booleans(),
)
def test_property_secret_values_never_shown(
    desired_data: dict[str, str],
    live_data: dict[str, str],
    string_data: dict[str, str],
    live_exists: bool,
) -> None:
    desired = secret(desired_data, string_data)
    live = served(secret(live_data)) if live_exists else None
    result = diff(desired, live)
    values = [*desired_data.values(), *live_data.values(), *string_data.values()]
    assert_hidden(shown(result), *values)
    expected = {**desired_data, **string_data}
    assert result.changed == (
        not live_exists or any(live_data.get(k) != v for k, v in expected.items())
    )
