"""The Jsonnet renderer: ext vars, TLAs, libraries inside the tree only, Argo CD's flattening."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import InputError, ManifestError
from gitops.model import RenderContext
from gitops.renderers.jsonnet import JsonnetOptions, JsonnetRenderer

pytest.importorskip("_jsonnet", reason="the jsonnet package is a dependency of gitops")

LIB = """\
{
  configMap(name, data={}):: {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, data: data,
  },
}
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def render(root: Path, tree: Path | None = None, options: dict[str, Any] | None = None,
           **defaults: Any) -> list[Any]:
    context = RenderContext(tree=tree, options={"jsonnet": options} if options else {})
    return JsonnetRenderer(**defaults).render(root, context)


def test_ext_vars_tlas_and_libraries(tmp_path: Path) -> None:
    write(tmp_path, {
        "vendor/k8s/k.libsonnet": LIB,
        "apps/web/params.libsonnet": "{ replicas: 2 }\n",
        "apps/web/main.jsonnet": (
            "local k = import 'k8s/k.libsonnet';\n"           # from the libs folder
            "local params = import 'params.libsonnet';\n"      # beside the file
            "function(name, debug=false) [\n"
            "  k.configMap(name, { env: std.extVar('env'), replicas: std.toString(\n"
            "    params.replicas * std.extVar('scale')), debug: std.toString(debug),\n"
            "    banner: importstr 'banner.txt' }),\n"
            "]\n"
        ),
        "apps/web/banner.txt": "hello",
    })
    options = {"ext_vars": {"env": "prod"}, "ext_code": {"scale": "3"},
               "tlas": {"name": "web-config"}, "tla_code": {"debug": "true"}, "libs": ["vendor"]}
    (resource,) = render(tmp_path / "apps/web", tmp_path, options)
    assert resource.name == "web-config"
    assert resource.manifest["data"] == {
        "env": "prod", "replicas": "6", "debug": "true", "banner": "hello"}
    assert resource.origin == "apps/web/main.jsonnet#0"


def test_argo_cd_spellings_of_ext_vars_and_tlas(tmp_path: Path) -> None:
    write(tmp_path, {"main.jsonnet": (
        "function(n) { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n },"
        " data: { a: std.extVar('a'), b: std.toString(std.extVar('b')) } }\n")})
    options = {
        "extVars": [{"name": "a", "value": "x"}, {"name": "b", "value": "1 + 1", "code": True}],
        "tlas": [{"name": "n", "value": "argo"}],
    }
    (resource,) = render(tmp_path, options=options)
    assert resource.name == "argo" and resource.manifest["data"] == {"a": "x", "b": "2"}
    parsed = JsonnetOptions.model_validate(options)
    assert parsed.ext_code == {"b": "1 + 1"} and parsed.tlas == {"n": "argo"}


def test_context_options_override_constructor_defaults(tmp_path: Path) -> None:
    write(tmp_path, {"main.jsonnet": (
        "{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: std.extVar('ns') } }\n")})
    renderer = JsonnetRenderer(ext_vars={"ns": "from-constructor"})
    assert renderer.render(tmp_path, RenderContext())[0].name == "from-constructor"
    context = RenderContext(options={"jsonnet": {"ext_vars": {"ns": "from-context"}}})
    assert renderer.render(tmp_path, context)[0].name == "from-context"
    with pytest.raises(InputError, match="option ext_varz"):
        renderer.render(tmp_path, RenderContext(options={"jsonnet": {"ext_varz": {}}}))


def test_objects_arrays_and_lists_are_flattened_like_argo_cd(tmp_path: Path) -> None:
    cm = "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: '%s' } }"
    write(tmp_path, {
        "a-object.jsonnet": cm % "one",
        "b-array.jsonnet": f"[{cm % 'two'}, {cm % 'three'}]",
        "c-list.jsonnet": f"{{ apiVersion: 'v1', kind: 'List', items: [{cm % 'four'}, {cm % 'five'}] }}",
        "d-plain.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: six}\n",
        "helpers.libsonnet": "error 'a library is never evaluated on its own'",
        "sub/nested.jsonnet": cm % "not-read-without-recurse",
        "README.md": "ignored",
    })
    resources = render(tmp_path)
    assert [r.name for r in resources] == ["one", "two", "three", "four", "five", "six"]
    assert [r.origin for r in resources] == [
        "a-object.jsonnet#0", "b-array.jsonnet#0", "b-array.jsonnet#1",
        "c-list.jsonnet#0.items[0]", "c-list.jsonnet#0.items[1]", "d-plain.yaml#0"]
    recursed = render(tmp_path, recurse=True)
    assert [r.name for r in recursed][-1] == "not-read-without-recurse"


def test_recurse_skips_library_folders(tmp_path: Path) -> None:
    write(tmp_path, {
        "main.jsonnet": "(import 'k.libsonnet').configMap('main')",
        "vendor/k.libsonnet": LIB,
        "vendor/example.jsonnet": "error 'vendored examples are not entry points'",
        "vendor/dashboard.json": json.dumps({"title": "not a manifest"}),
    })
    resources = render(tmp_path, recurse=True, libs=["vendor"])
    assert [r.name for r in resources] == ["main"]


@pytest.mark.parametrize("output, message", [
    ("'just a string'", "a manifest must be a mapping"),
    ("[[{}]]", "a manifest must be a mapping"),
    ("[null]", "a manifest must be a mapping, got null"),
    ("{ kind: 'ConfigMap', metadata: { name: 'x' } }", "apiVersion"),
])
def test_outputs_that_are_not_objects_are_refused(tmp_path: Path, output: str, message: str) -> None:
    write(tmp_path, {"app/main.jsonnet": output})
    with pytest.raises(ManifestError, match=message) as info:
        render(tmp_path / "app", tmp_path)
    assert info.value.path == "app/main.jsonnet"


def test_an_import_that_escapes_the_tree_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {
        "outside.libsonnet": "{ leaked: true }",
        "repo/app/main.jsonnet": "import '../../outside.libsonnet'",
        "repo/lib/link.jsonnet": "import 'escape.libsonnet'",
        "repo/abs/main.jsonnet": f"import '{tmp_path}/outside.libsonnet'",
        "repo/str/main.jsonnet": "importstr '../../outside.libsonnet'",
    })
    (tmp_path / "repo/lib/escape.libsonnet").symlink_to(tmp_path / "outside.libsonnet")
    # The linked library is refused by the tree walk already (it is a Jsonnet file whose
    # link leads outside), before any import could read it.
    cases = {"app": "resolves outside", "lib": "symlink leads outside", "abs": "is absolute",
             "str": "resolves outside"}
    for folder, message in cases.items():
        with pytest.raises(ManifestError, match=message) as info:
            render(tmp_path / "repo" / folder, tmp_path / "repo")
        where = "escape.libsonnet" if folder == "lib" else f"{folder}/main.jsonnet"
        assert info.value.path == where
        assert "leaked" not in str(info.value)


def test_library_paths_must_stay_in_the_tree(tmp_path: Path) -> None:
    write(tmp_path, {"repo/main.jsonnet": "{}", "vendor/k.libsonnet": LIB})
    with pytest.raises(ManifestError, match="outside the source tree"):
        render(tmp_path / "repo", libs=["../vendor"])
    with pytest.raises(ManifestError, match="relative to the source tree"):
        render(tmp_path / "repo", libs=[str(tmp_path / "vendor")])


def test_evaluation_errors_name_the_file_and_hide_option_values(tmp_path: Path) -> None:
    write(tmp_path, {"app/bad.jsonnet": "error 'cannot deploy with token ' + std.extVar('token')"})
    with pytest.raises(ManifestError) as info:
        render(tmp_path / "app", tmp_path, ext_vars={"token": "tok-12345-secret"})
    text = str(info.value)
    assert info.value.path == "app/bad.jsonnet" and "Jsonnet evaluation failed" in text
    assert "tok-12345-secret" not in text and str(tmp_path) not in text
    assert "app/bad.jsonnet:1" in text


@pytest.mark.parametrize("program", [
    "error 'bad: ' + std.extVar('token')",                      # raw, newline split in lines
    "error std.manifestJson({ t: std.extVar('token') })",     # JSON-escaped quote and newline
    "error std.toString([std.extVar('token')])",
])
def test_option_values_with_quotes_or_newlines_never_leak(tmp_path: Path, program: str) -> None:
    write(tmp_path, {"app/bad.jsonnet": program})
    with pytest.raises(ManifestError) as info:
        render(tmp_path / "app", tmp_path, ext_vars={"token": 'first-"half\nsecond-half'})
    text = str(info.value)
    assert "Jsonnet evaluation failed" in text
    for piece in ("first-", "second-half"):
        assert piece not in text, text


def test_unchanged_files_are_not_evaluated_again_and_an_import_change_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops.renderers import jsonnet as module

    write(tmp_path, {"lib/k.libsonnet": LIB, "app/main.jsonnet": (
        "(import 'k.libsonnet').configMap('app', { v: importstr 'value.txt' })"),
        "app/value.txt": "1"})
    renderer = JsonnetRenderer(libs=["lib"])
    context = RenderContext(tree=tmp_path)
    calls: list[str] = []
    real = module._run

    def counting(*args: Any, **kwargs: Any) -> list[Any]:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "_run", counting)
    first = renderer.render(tmp_path / "app", context)
    assert renderer.render(tmp_path / "app", context) == first and len(calls) == 1
    (tmp_path / "app/value.txt").write_text("2")  # read through importstr
    assert renderer.render(tmp_path / "app", context)[0].manifest["data"] == {"v": "2"}
    # a new file that would now be found first (beside the importer) changes the result
    write(tmp_path, {"app/k.libsonnet": "{ configMap(n, d):: { apiVersion: 'v1', kind: 'Secret',"
                                        " metadata: { name: n } } }"})
    assert renderer.render(tmp_path / "app", context)[0].kind == "Secret"
    assert len(calls) == 3


def test_viable() -> None:
    assert JsonnetRenderer.viable() == (True, "")


def test_a_render_that_never_ends_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    """max_stack does not bound a tail-recursive loop: a timeout must, or a sync hangs."""
    write(tmp_path, {"main.jsonnet": "local f(n) = if n < 0 then 0 else f(n + 1) tailstrict; f(0)"})
    renderer = JsonnetRenderer(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ManifestError, match=r"main.jsonnet.*longer than 1 s \(timeout\)"):
        renderer.render(tmp_path, RenderContext(tree=tmp_path))
    assert time.monotonic() - started < 10


def test_output_over_the_limit_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"main.jsonnet": "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: "
                                     "{ name: 'big' }, data: { v: std.repeat('x', 100000) } }"})
    with pytest.raises(ManifestError, match="over 1000 \\(limit\\)"):
        JsonnetRenderer(max_output_bytes=1000).render(tmp_path, RenderContext(tree=tmp_path))


def test_an_entry_file_linked_from_outside_the_tree_is_refused_not_skipped(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.jsonnet"
    outside.write_text("{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "main.jsonnet").symlink_to(outside)
    with pytest.raises(ManifestError, match=r"main\.jsonnet.*outside"):
        JsonnetRenderer().render(tree, RenderContext(tree=tree))
