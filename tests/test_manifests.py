"""Manifest loading: parsing, List flattening, validation, scopes, limits, alias bombs."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops import open_renderer
from gitops.errors import ManifestError
from gitops.manifests import (
    Limits,
    build_resources,
    gc_paused,
    is_cluster_scoped,
    load_tree,
    parse_documents,
    parse_manifests,
    place,
    validate_manifests,
)
from gitops.model import RenderContext, ResourceKey
from gitops.renderers.yaml import YamlRenderer

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def load_one(tmp_path: Path, content: str | bytes, name: str = "app.yaml", **kw: Any) -> list[Any]:
    write(tmp_path, {name: content})
    return load_tree(tmp_path, **kw)


def manifest_error(tmp_path: Path, content: str | bytes, name: str = "app.yaml") -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_one(tmp_path, content, name)
    return info.value


# ---------------------------------------------------------------- parsing


def test_multi_document_yaml_in_file_and_document_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.yaml": CM.format(name="b1") + "---\n" + CM.format(name="b2"),
            "a/x.yml": CM.format(name="a1"),
            "README.md": "# not a manifest: {",
            "notes.txt": "- nor: [this",
        },
    )
    resources = load_tree(tmp_path)
    assert [r.name for r in resources] == ["a1", "b1", "b2"]
    assert [r.origin for r in resources] == ["a/x.yml#0", "b.yaml#0", "b.yaml#1"]
    assert resources[0].key == ResourceKey("", "ConfigMap", "default", "a1")
    assert resources[0].api_version == "v1"
    assert resources[0].manifest["data"] == {"k": "v"}


def test_empty_and_null_documents_are_skipped_but_counted(tmp_path: Path) -> None:
    content = "---\n# just a comment\n---\nnull\n---\n" + CM.format(name="x") + "---\n"
    docs = parse_documents(content.encode(), "app.yaml")
    assert [(d.index, d.manifest["metadata"]["name"]) for d in docs] == [(2, "x")]
    assert load_one(tmp_path, "") == []


def test_parse_manifests_returns_plain_dicts() -> None:
    data = (CM.format(name="a") + "---\n" + CM.format(name="b")).encode()
    manifests = parse_manifests(data, "x.yaml")
    assert [type(m) for m in manifests] == [dict, dict]
    assert [m["metadata"]["name"] for m in manifests] == ["a", "b"]


def test_json_object_and_json_list(tmp_path: Path) -> None:
    single = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}
    as_list = {"apiVersion": "v1", "kind": "List", "items": [{**single, "metadata": {"name": "k"}}]}
    write(tmp_path, {"a.json": json.dumps(single), "b.json": json.dumps(as_list), "c.json": " \n"})
    assert [r.name for r in load_tree(tmp_path)] == ["j", "k"]


def test_json_top_level_array_is_refused(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, "[]", "x.json")
    assert exc.path == "x.json" and "kind: List" in str(exc)


def test_json_syntax_error_names_line(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, '{\n  "apiVersion": "v1",\n  "kind" "x"\n}', "bad.json")
    assert exc.path == "bad.json"
    assert "line 3" in str(exc) and "invalid JSON" in str(exc)


def test_json_with_utf8_bom_loads(tmp_path: Path) -> None:
    data = (
        b"\xef\xbb\xbf"
        + json.dumps({"apiVersion": "v1", "kind": "X", "metadata": {"name": "n"}}).encode()
    )
    assert [r.name for r in load_one(tmp_path, data, "a.json")] == ["n"]


def test_yaml_syntax_error_names_file_document_and_line(tmp_path: Path) -> None:
    content = CM.format(name="a") + "---\n" + CM.format(name="b") + "---\nkind: [unclosed\nx: 1\n"
    exc = manifest_error(tmp_path, content, "apps/broken.yaml")
    assert exc.path == "apps/broken.yaml"
    assert exc.document == 2
    assert "invalid YAML at line 16, column 2: did not find expected ',' or ']'" in str(exc)
    assert "(while parsing a flow sequence started at line 15)" in str(exc)
    assert str(exc).startswith("apps/broken.yaml (document 2): ")


def test_invalid_utf8_is_a_clear_error(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, b"apiVersion: v1\nkind: \xff\xfe\n", "bin.yaml")
    assert exc.path == "bin.yaml" and "not valid UTF-8" in str(exc)
    exc = manifest_error(tmp_path, b'{"a": "\xff"}', "bin.json")
    assert exc.path == "bin.json" and "not valid UTF-8" in str(exc)


def test_control_characters_are_a_clear_error(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, b"apiVersion: v1\x00\n")
    assert "control character" in str(exc)


def test_timestamps_stay_strings_and_binary_stays_base64_text(tmp_path: Path) -> None:
    content = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
        "  annotations:\n    created: 2024-01-02\n    at: 2024-01-02T03:04:05Z\n"
        "data:\n  key: !!binary |\n    aGVs\n    bG8=\n"
    )
    (resource,) = load_one(tmp_path, content)
    assert resource.annotations == {"created": "2024-01-02", "at": "2024-01-02T03:04:05Z"}
    assert resource.manifest["data"] == {"key": "aGVsbG8="}
    json.dumps(resource.manifest)  # plain JSON-ready data


def test_nested_yaml_beyond_the_nesting_limit_is_refused(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, "a: " + "[" * 5000 + "]" * 5000)
    assert "invalid YAML" in str(exc) or "nested" in str(exc)


# ---------------------------------------------------------------- lists


def test_list_kinds_are_flattened(tmp_path: Path) -> None:
    content = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: nested}}
---
apiVersion: apps/v1
kind: DeploymentList
items:
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: web}}
---
apiVersion: v1
kind: List
items: []
---
apiVersion: example.com/v1
kind: AllowList
metadata: {name: not-a-list}
spec: {entries: []}
"""
    resources = load_one(tmp_path, content)
    assert [(r.kind, r.name) for r in resources] == [
        ("ConfigMap", "one"),
        ("ConfigMap", "nested"),
        ("Deployment", "web"),
        ("AllowList", "not-a-list"),
    ]
    assert [r.origin for r in resources][:3] == [
        "app.yaml#0.items[0]",
        "app.yaml#0.items[1].items[0]",
        "app.yaml#1.items[0]",
    ]


def test_list_item_errors_name_document_and_item(tmp_path: Path) -> None:
    content = (
        CM.format(name="first")
        + "---\napiVersion: v1\nkind: List\nitems:\n"
        + "- {apiVersion: v1, kind: ConfigMap, metadata: {name: ok}}\n"
        + "- {apiVersion: v1, kind: ConfigMap, metadata: {}}\n"
    )
    exc = manifest_error(tmp_path, content, "list.yaml")
    assert exc.path == "list.yaml" and exc.document == 1
    assert "items[1]: metadata.name must be a non-empty string" in str(exc)


def test_list_item_that_is_not_a_mapping(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, "apiVersion: v1\nkind: List\nitems:\n- just a string\n")
    assert exc.document == 0 and "items[0]: a manifest must be a mapping" in str(exc)


def test_list_items_that_are_not_a_sequence(tmp_path: Path) -> None:
    exc = manifest_error(tmp_path, "apiVersion: v1\nkind: List\nitems: {a: 1}\n")
    assert "items of a List must be a sequence" in str(exc)


# ---------------------------------------------------------------- validation

VALID = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}


def with_(path: str, value: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(json.dumps(VALID))
    *parents, last = path.split(".")
    target = manifest
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return manifest


_DELETE = object()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (["not", "a", "mapping"], "a manifest must be a mapping, got a sequence"),
        ("just text", "a manifest must be a mapping, got a string"),
        (with_("apiVersion", _DELETE), "apiVersion must be a non-empty string (missing)"),
        (with_("apiVersion", ""), "apiVersion must be a non-empty string"),
        (with_("apiVersion", 1), "apiVersion must be a non-empty string (got a number)"),
        (with_("apiVersion", "a/b/c"), "must be VERSION or GROUP/VERSION"),
        (with_("apiVersion", "apps/"), "must be VERSION or GROUP/VERSION"),
        (with_("kind", _DELETE), "kind must be a non-empty string (missing)"),
        (with_("kind", ["x"]), "kind must be a non-empty string (got a sequence)"),
        (with_("kind", "Config Map"), "kind 'Config Map' contains"),
        (with_("metadata", _DELETE), "metadata must be a mapping (missing)"),
        (with_("metadata", "x"), "metadata must be a mapping (got a string)"),
        (with_("metadata.name", _DELETE), "metadata.name must be a non-empty string (missing)"),
        (with_("metadata.name", ""), "metadata.name must be a non-empty string"),
        (with_("metadata.name", 42), "metadata.name must be a non-empty string (got a number)"),
        (with_("metadata.name", "a/b"), "metadata.name 'a/b' is not a valid name"),
        (with_("metadata.name", "."), "is not a valid name"),
        (with_("metadata.name", ".."), "is not a valid name"),
        (with_("metadata.name", "a%2Fb"), "is not a valid name"),
        (with_("metadata.name", "bad\x00name"), "'bad\\x00name' is not a valid name"),
        (with_("metadata.name", "tab\there"), "is not a valid name"),
        (with_("metadata.name", "x" * 254), "metadata.name is 254 characters long, over 253"),
        (with_("metadata.namespace", "Prod"), "metadata.namespace 'Prod' is not a valid DNS label"),
        (with_("metadata.namespace", "a" * 64), "is not a valid DNS label"),
        (with_("metadata.namespace", "-a"), "is not a valid DNS label"),
        (with_("metadata.namespace", 7), "metadata.namespace must be a string, got a number"),
    ],
)
def test_validation_errors_name_file_and_document(
    tmp_path: Path, manifest: Any, message: str
) -> None:
    content = CM.format(name="first") + "---\n" + yaml.safe_dump(manifest)
    exc = manifest_error(tmp_path, content, "apps/bad.yaml")
    assert exc.path == "apps/bad.yaml"
    assert exc.document == 1
    assert message in str(exc)
    assert str(exc).startswith("apps/bad.yaml (document 1): ")


def test_generate_name_without_name_is_refused_clearly(tmp_path: Path) -> None:
    manifest = with_("metadata", {"generateName": "job-"})
    exc = manifest_error(tmp_path, yaml.safe_dump(manifest))
    assert "metadata.generateName" in str(exc) and "fixed name" in str(exc)


@pytest.mark.parametrize(
    "name", ["system:controller:foo", "a" * 253, "Upper_Case", "x.y.z", "with space", "ünï"]
)
def test_path_segment_names_are_valid(tmp_path: Path, name: str) -> None:
    (resource,) = load_one(tmp_path, yaml.safe_dump(with_("metadata.name", name)))
    assert resource.name == name


def test_validate_manifests_names_the_given_path_and_index() -> None:
    with pytest.raises(ManifestError) as info:
        validate_manifests([VALID, with_("kind", "")], path="kustomize output")
    assert info.value.path == "kustomize output" and info.value.document == 1


def test_validate_manifests_flattens_lists() -> None:
    as_list = {"apiVersion": "v1", "kind": "List", "items": [VALID, with_("metadata.name", "b")]}
    resources = validate_manifests([as_list], path="in")
    assert [(r.name, r.origin) for r in resources] == [
        ("ok", "in#0.items[0]"),
        ("b", "in#0.items[1]"),
    ]


def test_validate_manifests_does_not_mutate_its_input() -> None:
    manifest = with_("metadata.name", "cm")
    snapshot = json.dumps(manifest, sort_keys=True)
    (resource,) = validate_manifests([manifest])
    assert resource.manifest["metadata"]["namespace"] == "default"
    assert json.dumps(manifest, sort_keys=True) == snapshot


# ---------------------------------------------------------------- duplicates


def test_duplicates_across_files_name_both(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": CM.format(name="x"),
            "b/c.yaml": CM.format(name="y") + "---\n" + CM.format(name="x"),
        },
    )
    with pytest.raises(ManifestError) as info:
        load_tree(tmp_path)
    exc = info.value
    assert exc.path == "b/c.yaml" and exc.document == 1
    assert "duplicate resource ConfigMap/default/x" in str(exc)
    assert "a.yaml (document 0)" in str(exc)


def test_duplicate_across_api_versions_and_after_namespace_defaulting(tmp_path: Path) -> None:
    dep = "apiVersion: apps/{v}\nkind: Deployment\nmetadata:\n  name: web\n{ns}"
    write(
        tmp_path,
        {
            "a.yaml": dep.format(v="v1", ns=""),
            "b.yaml": dep.format(v="v1beta2", ns="  namespace: default\n"),
        },
    )
    with pytest.raises(ManifestError, match=r"duplicate resource Deployment\.apps/default/web"):
        load_tree(tmp_path)


def test_same_name_in_other_kind_group_or_namespace_is_fine(tmp_path: Path) -> None:
    content = "\n---\n".join(
        [
            CM.format(name="x"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: x}",
            "apiVersion: example.com/v1\nkind: ConfigMap\nmetadata: {name: x}",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: other}",
        ]
    )
    assert len(load_one(tmp_path, content)) == 4


# ---------------------------------------------------------------- scope


def test_namespace_defaulting_and_cluster_scoped_kinds(tmp_path: Path) -> None:
    content = "\n---\n".join(
        [
            CM.format(name="cm"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pinned, namespace: prod}",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
            "metadata: {name: 'system:controller:foo', namespace: ignored}",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}",
        ]
    )
    resources = load_one(tmp_path, content, default_namespace="team-a")
    assert [r.namespace for r in resources] == ["team-a", "prod", "", "", "team-a"]
    assert [r.manifest["metadata"].get("namespace") for r in resources] == [
        "team-a",
        "prod",
        None,
        None,
        "team-a",
    ]


def test_crd_in_the_same_set_declares_the_scope(tmp_path: Path) -> None:
    crd = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.example.com}}
spec:
  group: example.com
  scope: {scope}
  names: {{kind: {kind}, plural: {plural}}}
"""
    write(
        tmp_path,
        {
            "crds.yaml": crd.format(plural="clusterwidgets", kind="ClusterWidget", scope="Cluster")
            + "---\n"
            + crd.format(plural="widgets", kind="Widget", scope="Namespaced"),
            "use.yaml": "apiVersion: example.com/v1\nkind: ClusterWidget\nmetadata: {name: c}\n"
            "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        },
    )
    by_name = {r.name: r for r in load_tree(tmp_path)}
    assert by_name["clusterwidgets.example.com"].namespace == ""
    assert by_name["c"].namespace == ""
    assert by_name["w"].namespace == "default"


def test_is_namespaced_callback_wins_and_none_falls_back(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def is_namespaced(group: str, kind: str) -> bool | None:
        asked.append((group, kind))
        return False if kind == "Widget" else None

    content = "\n---\n".join(
        [
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: c}",
            CM.format(name="d"),
        ]
    )
    resources = load_one(tmp_path, content, is_namespaced=is_namespaced)
    assert [r.namespace for r in resources] == ["", "", "", "default"]
    assert asked.count(("example.com", "Widget")) == 1  # answers are cached per load


def test_is_cluster_scoped_table() -> None:
    assert is_cluster_scoped("", "Namespace")
    assert is_cluster_scoped("rbac.authorization.k8s.io", "ClusterRoleBinding")
    assert is_cluster_scoped("apiextensions.k8s.io", "CustomResourceDefinition")
    assert is_cluster_scoped("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
    assert not is_cluster_scoped("", "ConfigMap")
    assert not is_cluster_scoped("rbac.authorization.k8s.io", "Role")
    assert not is_cluster_scoped("example.com", "Namespace")


def test_invalid_default_namespace_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="default namespace"):
        load_tree(tmp_path, default_namespace="Not_Valid")


# ---------------------------------------------------------------- aliases

BILLION_LAUGHS = """apiVersion: v1
kind: ConfigMap
metadata: {name: lol}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    content = CM.format(name="fine") + "---\n" + BILLION_LAUGHS
    started = time.perf_counter()
    exc = manifest_error(tmp_path, content, "lol.yaml")
    assert time.perf_counter() - started < 0.5
    assert exc.path == "lol.yaml" and exc.document == 1
    assert "alias" in str(exc) and "lol" not in exc.reason


def test_alias_bomb_in_mapping_keys_is_refused(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(
            f"{cur}: &{cur} {{? *{prev} : 1, ? [*{prev}] : 2, ? [[*{prev}]] : 3, ? [[[*{prev}]]] : 4, ? [[[[*{prev}]]]] : 5, ? [[[[[*{prev}]]]]] : 6, ? [[[[[[*{prev}]]]]]] : 7, ? [[[[[[[*{prev}]]]]]]] : 8, ? [[[[[[[[*{prev}]]]]]]]] : 9, ? [[[[[[[[[*{prev}]]]]]]]]] : 10}}"
        )
    content = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\nx:\n" + "\n".join(
        "  " + line for line in levels
    )
    exc = manifest_error(tmp_path, content)
    assert "alias" in str(exc)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    exc = manifest_error(
        tmp_path, "apiVersion: v1\nkind: X\nmetadata: {name: r}\nspec: &s {self: *s}\n"
    )
    assert "containing itself" in str(exc)


def test_small_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    content = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: &labels {app: web, tier: frontend}
spec:
  selector: {matchLabels: *labels}
  template:
    metadata: {labels: *labels}
    spec:
      containers:
      - &base {name: main, image: "web:1", args: ["a && b"]}
      - <<: *base
        name: sidecar
"""
    (resource,) = load_one(tmp_path, content)
    spec = resource.manifest["spec"]
    assert spec["selector"]["matchLabels"] == {"app": "web", "tier": "frontend"}
    assert spec["template"]["spec"]["containers"][1] == {
        "name": "sidecar",
        "image": "web:1",
        "args": ["a && b"],
    }


def test_namespace_defaulting_does_not_leak_into_aliased_metadata(tmp_path: Path) -> None:
    content = """apiVersion: apps/v1
kind: Deployment
metadata: &meta {name: web}
spec:
  template:
    metadata: *meta
"""
    (resource,) = load_one(tmp_path, content)
    assert resource.manifest["metadata"] == {"name": "web", "namespace": "default"}
    assert resource.manifest["spec"]["template"]["metadata"] == {"name": "web"}


def test_alias_limit_is_configurable(tmp_path: Path) -> None:
    content = "apiVersion: v1\nkind: X\nmetadata: {name: a}\nx: &x [1, 2, 3, 4]\ny: [*x, *x]\n"
    assert len(load_one(tmp_path, content)) == 1
    write(tmp_path, {"app.yaml": content})
    with pytest.raises(ManifestError, match="alias"):
        load_tree(tmp_path, limits=Limits(max_alias_nodes=5))


# ---------------------------------------------------------------- limits


def test_file_size_limit(tmp_path: Path) -> None:
    write(tmp_path, {"big.yaml": CM.format(name="a") + "#" * 200})
    with pytest.raises(ManifestError, match="over the limit of 100 bytes") as info:
        load_tree(tmp_path, limits=Limits(max_file_bytes=100))
    assert info.value.path == "big.yaml"
    with pytest.raises(ManifestError, match="over the limit"):
        parse_documents(b"x" * 101, "p.yaml", limits=Limits(max_file_bytes=100))


def test_total_size_limit(tmp_path: Path) -> None:
    write(tmp_path, {f"{i}.yaml": CM.format(name=f"n{i}") for i in range(3)})
    size = len(CM.format(name="n0"))
    assert len(load_tree(tmp_path, limits=Limits(max_total_bytes=3 * size))) == 3
    with pytest.raises(ManifestError, match="exceed") as info:
        load_tree(tmp_path, limits=Limits(max_total_bytes=3 * size - 1))
    assert info.value.path == "2.yaml"


def test_document_and_resource_limits(tmp_path: Path) -> None:
    content = "---\n".join(CM.format(name=f"n{i}") for i in range(4))
    write(tmp_path, {"a.yaml": content, "b.yaml": CM.format(name="b")})
    with pytest.raises(ManifestError, match="more than 3 documents") as info:
        load_tree(tmp_path, limits=Limits(max_documents_per_file=3))
    assert info.value.path == "a.yaml"
    with pytest.raises(ManifestError, match="more than 4 resources") as info:
        load_tree(tmp_path, limits=Limits(max_resources=4))
    assert info.value.path == "b.yaml"
    with pytest.raises(ManifestError, match="more than 2 resources"):
        validate_manifests([VALID] * 3, limits=Limits(max_resources=2))


# ---------------------------------------------------------------- secrets


SECRET = "s3cr3t-Value"


@pytest.mark.parametrize(
    "content",
    [
        f'apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  password: "{SECRET}\n',
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  password: {SECRET}: x\n",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{}}\nstringData: {{password: {SECRET}}}\n",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{p: {SECRET}}}\n---\n"
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{p: {SECRET}}}\n",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{p: {SECRET}\t\x01}}\n",
    ],
)
def test_secret_values_never_appear_in_errors(tmp_path: Path, content: str) -> None:
    exc = manifest_error(tmp_path, content, "secret.yaml")
    assert SECRET not in str(exc)
    assert exc.path == "secret.yaml"


# ---------------------------------------------------------------- round trip and renderer

_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12))
_data = st.dictionaries(st.text(min_size=1, max_size=8), _scalar, max_size=4)
_manifest = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["v1", "apps/v1", "example.com/v1alpha1"]),
        "kind": st.sampled_from(["ConfigMap", "Widget", "Deployment"]),
        "metadata": st.fixed_dictionaries(
            {"name": _label, "namespace": _label},
            optional={"labels": st.dictionaries(_label, _label, max_size=3)},
        ),
        "spec": _data,
    }
)


def _unique(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for m in manifests:
        key = (
            m["apiVersion"].rpartition("/")[0],
            m["kind"],
            m["metadata"]["namespace"],
            m["metadata"]["name"],
        )
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


@given(
    st.lists(_manifest, max_size=12).map(_unique),
    st.integers(min_value=1, max_value=4),
    st.booleans(),
)
def test_any_valid_manifests_written_to_files_load_back_equal(
    manifests: list[dict[str, Any]], per_file: int, as_json: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for start in range(0, len(manifests), per_file):
            chunk = manifests[start : start + per_file]
            if as_json:
                payload = {"apiVersion": "v1", "kind": "List", "items": chunk}
                (root / f"f{start:04d}.json").write_text(json.dumps(payload))
            else:
                (root / f"f{start:04d}.yaml").write_text(yaml.safe_dump_all(chunk))
        resources = load_tree(root)
    assert [r.manifest for r in resources] == manifests
    for resource, manifest in zip(resources, manifests, strict=True):
        assert resource.key.name == manifest["metadata"]["name"]
        assert resource.key.namespace == manifest["metadata"]["namespace"]


@given(st.lists(_manifest, max_size=8).map(_unique))
def test_parse_then_build_equals_validate(manifests: list[dict[str, Any]]) -> None:
    data = yaml.safe_dump_all(manifests).encode()
    built = build_resources(parse_documents(data, "x.yaml"))
    validated = validate_manifests(parse_manifests(data, "x.yaml"), path="x.yaml")
    assert [(r.key, r.manifest) for r in built] == [(r.key, r.manifest) for r in validated]


def test_yaml_renderer_is_the_default_renderer_plugin(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": CM.format(name="a")})
    renderer = open_renderer("yaml")
    assert isinstance(renderer, YamlRenderer) and renderer.name == "yaml"
    (resource,) = renderer.render(tmp_path, RenderContext())
    assert resource.key == ResourceKey("", "ConfigMap", "", "a"), "rendered, not yet placed"
    (placed,) = place([resource], default_namespace="apps")
    assert placed.key == ResourceKey("", "ConfigMap", "apps", "a")
    assert resource.manifest["metadata"] == {"name": "a"}, "placing copies, never mutates"


def test_placing_takes_the_scope_from_the_target_each_time(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
    rendered = YamlRenderer().render(tmp_path, RenderContext())
    assert place(rendered, is_namespaced=lambda group, kind: False)[0].namespace == ""
    assert place(rendered, is_namespaced=lambda group, kind: None)[0].namespace == "default"
    with pytest.raises(ManifestError, match="over the limit"):
        YamlRenderer(limits=Limits(max_file_bytes=10)).render(tmp_path, RenderContext())


def test_yaml_renderer_reparses_only_files_whose_content_changed(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": CM.format(name="a"), "b.yaml": CM.format(name="b")})
    renderer = YamlRenderer()
    first = renderer.render(tmp_path, RenderContext())
    write(tmp_path, {"b.yaml": CM.format(name="b2")})
    second = renderer.render(tmp_path, RenderContext())
    assert second[0] is first[0], "an unchanged file is not parsed again"
    assert second[1].key.name == "b2"
    (tmp_path / "a.yaml").write_text(CM.format(name="a3"))  # same size, same second
    assert renderer.render(tmp_path, RenderContext())[0].key.name == "a3"


def test_load_tree_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a directory"):
        load_tree(tmp_path / "missing")


_FALLBACK_SCRIPT = """
import yaml
del yaml.CSafeLoader  # as if PyYAML were built without libyaml
from gitops import manifests
from gitops.errors import ManifestError
assert manifests._SafeLoader is yaml.SafeLoader
docs = manifests.parse_documents(b"a: 2024-01-01\\n---\\nb: &x [1]\\nc: *x\\n", "f.yaml")
assert [d.manifest for d in docs] == [{"a": "2024-01-01"}, {"b": [1], "c": [1]}], docs
for data, expected in [(LOL, "alias"), (b'p: "s3cr3t\\n', "line 1"), (b"[" * 5000, "nested")]:
    try:
        manifests.parse_documents(data, "f.yaml")
    except ManifestError as exc:
        assert expected in str(exc) and "s3cr3t" not in str(exc), str(exc)
    else:
        raise AssertionError(data[:20])
print("ok")
"""


def test_pure_python_loader_fallback_behaves_the_same() -> None:
    script = f"LOL = {BILLION_LAUGHS.encode()!r}\n" + _FALLBACK_SCRIPT
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_load_tree_leaves_the_collector_enabled(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": CM.format(name="a"), "b.yaml": "kind: [broken"})
    with pytest.raises(ManifestError):
        load_tree(tmp_path)
    assert gc.isenabled()
