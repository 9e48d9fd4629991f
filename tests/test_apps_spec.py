"""The Application spec (gitops.apps): model, Go durations, loading, schema, and a real sync."""

from __future__ import annotations

import copy
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import gitops
from gitops.apps import (
    Application,
    RetrySpec,
    application_json_schema,
    check_dependencies,
    format_duration,
    inventory_name,
    load_applications,
    parse_duration,
)
from gitops.errors import InputError, ManifestError

SECRET = "s3cr3t-value-xyz"

FULL = """\
apiVersion: gitops.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: gitops, labels: {team: web}}
spec:
  source: {url: "git+https://host/repo.git@main#path=apps/shop", options: {depth: 1}}
  target: {url: "k8s:", options: {field_manager: ops}}
  interval: 1m
  prune: true
  selfHeal: true
  suspend: false
  wait: {timeout: 5m}
  retry: {limit: 5, backoff: 5s, maxBackoff: 3m}
  dependsOn: [infra, other/db]
  ignoreDifferences:
    - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
  substitute: {TOKEN: @SECRET@}
""".replace("@SECRET@", SECRET)


def doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "app"},
        "spec": {"source": {"url": "dir:src"}, "target": {"url": "mock:"}},
    }
    base["spec"].update(spec)
    return base


def write(tmp_path: Path, name: str, *docs: dict[str, Any] | str) -> Path:
    path = tmp_path / name
    path.write_text("---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in docs))
    return path


# -- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "nanos", "canonical"), [
    ("1s", 10**9, "1s"),
    ("5m", 300 * 10**9, "5m0s"),
    ("1h30m", 5400 * 10**9, "1h30m0s"),
    ("1.5h", 5400 * 10**9, "1h30m0s"),
    ("250ms", 250 * 10**6, "250ms"),
    ("90s", 90 * 10**9, "1m30s"),
    ("1h", 3600 * 10**9, "1h0m0s"),
    ("0", 0, "0s"),
    ("+2s", 2 * 10**9, "2s"),
    ("-1m", -60 * 10**9, "-1m0s"),
    ("1.s", 10**9, "1s"),
    (".5s", 5 * 10**8, "500ms"),
    ("1500us", 15 * 10**5, "1.5ms"),
    ("1µs", 1000, "1µs"),
    ("1μs", 1000, "1µs"),
    ("7ns", 7, "7ns"),
    ("1h2m3.004s", (3723 * 10**9) + 4 * 10**6, "1h2m3.004s"),
    ("3.0000000019s", 3 * 10**9 + 1, "3.000000001s"),  # truncated to the nanosecond, as Go
    ("2562047h47m16.854775807s", 2**63 - 1, "2562047h47m16.854775807s"),
])
def test_go_durations(text: str, nanos: int, canonical: str) -> None:
    assert parse_duration(text) == nanos
    assert format_duration(nanos) == canonical
    assert parse_duration(canonical) == nanos


@pytest.mark.parametrize("text", [
    "", "1", "s", ".s", "-", "1 s", "1d", "5M", "1s5", "1..5s", "2562047h47m16.854775808s", "1e3s",
])
def test_go_refuses_these_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as info:
        parse_duration(text)
    assert len(text) < 4 or text not in str(info.value)  # the value is never quoted


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_duration_string_round_trips(nanos: int) -> None:
    text = format_duration(nanos)
    assert re.fullmatch(r"-?(\d+h)?(\d+m)?\d+(\.\d+)?(s|ms|µs|ns)", text)
    assert parse_duration(text) == nanos


def test_duration_fields_take_strings_and_timedeltas_not_bare_numbers() -> None:
    assert Application.model_validate(doc(interval=timedelta(minutes=2))).spec.interval == 120
    with pytest.raises(ValueError, match="needs a unit"):
        Application.model_validate(doc(interval=60))


# -- the model ------------------------------------------------------------------------


def test_every_field_of_the_issue_document(tmp_path: Path) -> None:
    (app,) = load_applications(write(tmp_path, "apps.yaml", FULL))
    assert app.key == "gitops/shop" and app.name == "shop" and app.namespace == "gitops"
    assert app.metadata.labels == {"team": "web"}
    spec = app.spec
    assert spec.source.url.startswith("git+https://host/repo.git") and app.source_options == {"depth": 1}
    assert spec.target.url == "k8s:" and app.target_options == {"field_manager": "ops"}
    assert (spec.interval, spec.prune, spec.self_heal, spec.suspend) == (60, True, True, False)
    assert spec.wait is not None and spec.wait.timeout == 300
    assert (spec.retry.limit, spec.retry.backoff, spec.retry.max_backoff) == (5, 5, 180)
    assert app.dependencies == ("gitops/infra", "other/db")
    (rule,) = spec.ignore_differences
    assert (rule.group, rule.kind, rule.json_pointers) == ("apps", "Deployment", ("/spec/replicas",))
    assert spec.substitute == {"TOKEN": SECRET}


def test_defaults() -> None:
    app = Application.model_validate(doc())
    assert app.namespace == "default" and app.key == "default/app"
    spec = app.spec
    assert (spec.interval, spec.prune, spec.self_heal, spec.suspend, spec.wait) == (60, False, True, False, None)
    assert spec.retry == RetrySpec.model_validate({"limit": 5, "backoff": "5s", "maxBackoff": "3m"})
    assert (spec.depends_on, spec.ignore_differences, spec.substitute) == ((), (), {})


def test_round_trip_is_canonical_camel_case(tmp_path: Path) -> None:
    (app,) = load_applications(write(tmp_path, "apps.yaml", FULL))
    data = app.to_dict()
    assert data["spec"]["interval"] == "1m0s" and data["spec"]["wait"] == {"timeout": "5m0s"}
    assert data["spec"]["retry"] == {"limit": 5, "backoff": "5s", "maxBackoff": "3m0s"}
    assert data["spec"]["selfHeal"] is True and data["spec"]["dependsOn"] == ["infra", "other/db"]
    assert data["spec"]["ignoreDifferences"] == [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]
    assert Application.model_validate(data) == app
    again = load_applications(write(tmp_path, "again.yaml", yaml.safe_dump(data)))
    assert again == [app] and again[0].to_dict() == data
    assert "wait" not in Application.model_validate(doc()).to_dict()


def test_snake_case_from_python() -> None:
    app = Application(metadata={"name": "a"}, spec={
        "source": {"url": "dir:x"}, "target": {"url": "mock:"}, "self_heal": False,
        "depends_on": ["b"], "retry": {"max_backoff": "1m"}})
    assert app.spec.self_heal is False and app.spec.retry.max_backoff == 60
    assert app.dependencies == ("default/b",)


def test_repr_shows_no_secret() -> None:
    data = doc(substitute={"TOKEN": SECRET})
    data["spec"]["source"] = {"url": f"git+https://user:{SECRET}@host/r.git", "options": {"password": SECRET}}
    app = Application.model_validate(data)
    assert SECRET not in repr(app) and SECRET not in str(app)
    assert "TOKEN" in repr(app) and "password" in repr(app)


def test_retry_delay_is_exponential_and_capped() -> None:
    retry = RetrySpec.model_validate({"limit": 5, "backoff": "5s", "maxBackoff": "30s"})
    assert [retry.delay(n) for n in range(7)] == [None, 5, 10, 20, 30, 30, None]


# -- errors ---------------------------------------------------------------------------


def problem(tmp_path: Path, *docs: dict[str, Any] | str) -> str:
    with pytest.raises(ManifestError) as info:
        load_applications(write(tmp_path, "bad.yaml", *docs))
    text = str(info.value)
    assert text.startswith(str(tmp_path / "bad.yaml"))
    assert SECRET not in text
    return text


@pytest.mark.parametrize(("change", "expected"), [
    ({"interval": "5 minutes"}, r"spec\.interval: invalid duration"),
    ({"interval": "0s"}, r"spec\.interval: .*greater than 0"),
    ({"wait": {"timeout": "-1m"}}, r"spec\.wait\.timeout: .*greater than 0"),
    ({"retry": {"backoff": "1m", "maxBackoff": "10s"}}, r"spec\.retry: maxBackoff must not be shorter"),
    ({"selfheal": True}, r"spec\.selfheal: unknown field"),
    ({"source": {"url": "dir:x", "ref": "main"}}, r"spec\.source\.ref: unknown field"),
    ({"dependsOn": ["Not_A_Label"]}, r"spec\.dependsOn: .*NAME or NAMESPACE/NAME"),
    ({"dependsOn": ["a/b/c"]}, r"spec\.dependsOn: .*NAME or NAMESPACE/NAME"),
    ({"dependsOn": ["x", "default/x"]}, r"spec\.dependsOn: an application is named twice"),
    ({"dependsOn": ["default/second"]}, r"spec\.dependsOn: an application cannot depend on itself"),
    ({"substitute": {"bad-name": SECRET}}, r"spec\.substitute: variable names must match"),
    ({"substitute": {"N": 3}}, r"spec\.substitute\.N: .*valid string"),
    ({"ignoreDifferences": [{"kind": "X", "jsonPointer": ["/a"]}]},
     r"spec\.ignoreDifferences\.0\.jsonPointer: unknown field"),
])
def test_spec_errors_name_the_field(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    assert re.search(r"\(document 1\): " + expected, problem(tmp_path, doc(), change and _renamed(doc(**change))))


def _renamed(data: dict[str, Any]) -> dict[str, Any]:
    data["metadata"]["name"] = "second"
    return data


@pytest.mark.parametrize(("metadata", "expected"), [
    ({"name": "Shop"}, r"metadata\.name: must be a DNS label"),
    ({"name": "a" * 64}, r"metadata\.name: must be a DNS label"),
    ({"name": "shop", "namespace": "my_ns"}, r"metadata\.namespace: must be a DNS label"),
    ({"name": "shop", "uid": "x"}, r"metadata\.uid: unknown field"),
    ({}, r"metadata\.name: Field required"),
])
def test_bad_metadata(tmp_path: Path, metadata: dict[str, Any], expected: str) -> None:
    data = doc()
    data["metadata"] = metadata
    assert re.search(r"\(document 0\): " + expected, problem(tmp_path, data))


@pytest.mark.parametrize(("api_version", "kind", "expected"), [
    ("v1", "ConfigMap", "not a gitops.dev document"),
    ("argoproj.io/v1alpha1", "Application", "not a gitops.dev document"),
    ("gitops.dev/v1beta1", "Application", "apiVersion gitops.dev/v1beta1 is not supported"),
    ("gitops.dev/v1alpha1", "Kustomization", "kind Kustomization of gitops.dev is not supported"),
    (None, "Application", "apiVersion and kind are required"),
])
def test_wrong_kind_or_api_version(tmp_path: Path, api_version: str | None, kind: str, expected: str) -> None:
    data = doc()
    data["apiVersion"], data["kind"] = api_version, kind
    assert f"(document 0): {expected}" in problem(tmp_path, data)


def test_not_yaml_and_unreadable_files(tmp_path: Path) -> None:
    assert "bad.yaml" in problem(tmp_path, "a: [unclosed\n")
    with pytest.raises(ManifestError, match=r"missing\.yaml: cannot read"):
        load_applications(tmp_path / "missing.yaml")


def test_duplicate_names_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", doc(), _renamed(doc()))
    dup = doc()
    dup["metadata"]["namespace"] = "default"
    second = write(tmp_path, "b.yaml", {**doc(), "metadata": {"name": "other"}}, dup)
    with pytest.raises(ManifestError) as info:
        load_applications(first, second)
    assert str(info.value) == (f"{second} (document 1): application default/app is already declared "
                               f"in {first} (document 0)")
    other_ns = doc()
    other_ns["metadata"]["namespace"] = "prod"
    assert [a.key for a in load_applications(first, write(tmp_path, "c.yaml", other_ns))] == [
        "default/app", "default/second", "prod/app"]


def test_many_documents_per_file_and_many_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", doc(), "", _renamed(doc()))  # an empty document is skipped
    listed = {"apiVersion": "v1", "kind": "List", "items": [{**doc(), "metadata": {"name": "listed"}}]}
    b = write(tmp_path, "b.yaml", listed)
    j = tmp_path / "c.json"
    j.write_text('{"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": "j"},'
                 ' "spec": {"source": {"url": "dir:x"}, "target": {"url": "mock:"}}}')
    assert [app.name for app in load_applications(a, b, j)] == ["app", "second", "listed", "j"]
    assert load_applications() == []


def test_dependency_cycles(tmp_path: Path) -> None:
    apps = [doc(dependsOn=["b"]), {**doc(dependsOn=["c"]), "metadata": {"name": "b"}},
            {**doc(dependsOn=["default/app"]), "metadata": {"name": "c"}}]
    with pytest.raises(InputError, match=r"dependsOn cycle: default/app -> default/b -> default/c -> default/app"):
        load_applications(write(tmp_path, "cycle.yaml", *apps))
    check_dependencies([Application.model_validate(doc(dependsOn=["elsewhere/x"]))])  # unknown: allowed
    with pytest.raises(InputError, match="cannot depend on itself"):
        Application.from_object(doc(dependsOn=["app"]))


# -- Kubernetes objects ----------------------------------------------------------------


def test_from_object_ignores_status_and_server_metadata(tmp_path: Path) -> None:
    (declared,) = load_applications(write(tmp_path, "apps.yaml", FULL))
    obj = copy.deepcopy(yaml.safe_load(FULL))
    obj["metadata"].update(uid="1234", resourceVersion="7", generation=3, creationTimestamp="2026-01-01T00:00:00Z",
                           managedFields=[{"manager": "kubectl"}], finalizers=["x"])
    obj["status"] = {"sync": "Synced", "conditions": [{"type": "Ready", "status": "True"}]}
    assert Application.from_object(obj) == declared


def test_from_object_errors_name_the_object() -> None:
    bad = doc(interval="soon", substitute={"T": SECRET})
    bad["metadata"]["namespace"] = "prod"
    with pytest.raises(InputError, match=r"^Application prod/app: spec\.interval: invalid duration") as info:
        Application.from_object(bad)
    assert SECRET not in str(info.value)
    with pytest.raises(InputError, match=r"Application: not a gitops\.dev document"):
        Application.from_object({"apiVersion": "v1", "kind": "Secret"})


# -- inventory names --------------------------------------------------------------------


def test_inventory_name_is_a_stable_dns_label_and_apps_never_share_one() -> None:
    name = inventory_name("gitops", "shop")
    assert re.fullmatch(r"gitops-shop-[0-9a-f]{10}", name) and name == inventory_name("gitops", "shop")
    assert inventory_name("a-b", "c") != inventory_name("a", "b-c")
    long = inventory_name("n" * 63, "m" * 63)
    assert len(long) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", long)
    assert long != inventory_name("n" * 63, "m" * 62)
    gitops.ReconcilerOptions(name=long)  # the engine's own check agrees


@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
       st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True))
def test_every_inventory_name_is_valid(namespace: str, name: str) -> None:
    gitops.ReconcilerOptions(name=inventory_name(namespace, name))


# -- JSON Schema --------------------------------------------------------------------------


def _check(schema: dict[str, Any], value: Any, defs: dict[str, Any], at: str = "") -> list[str]:
    """A small JSON Schema checker for the keywords pydantic emits (no new dependency)."""
    if "$ref" in schema:
        return _check(defs[schema["$ref"].rsplit("/", 1)[1]], value, defs, at)
    if "anyOf" in schema:
        options = [_check(s, value, defs, at) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{at}: no anyOf branch matches"]
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = kind is None or isinstance(value, types[kind])
    if not ok:
        return [f"{at}: not {kind}"]
    errors = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: not {schema['const']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{at}: pattern")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{at}: too long")
    if isinstance(value, int) and not (schema.get("minimum", value) <= value <= schema.get("maximum", value)):
        errors.append(f"{at}: out of range")
    if isinstance(value, dict):
        errors += [f"{at}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties", True))
            if sub is False:
                errors.append(f"{at}.{key}: not allowed")
            elif isinstance(sub, dict):
                errors += _check(sub, item, defs, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _check(schema["items"], item, defs, f"{at}[{i}]")
    return errors


def test_json_schema_uses_yaml_names_and_accepts_valid_documents(tmp_path: Path) -> None:
    schema = application_json_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert {"selfHeal", "dependsOn", "ignoreDifferences", "substitute"} <= set(defs["ApplicationSpec"]["properties"])
    assert defs["ApplicationSpec"]["properties"]["interval"]["default"] == "1m"
    sample = yaml.safe_load(FULL)
    (app,) = load_applications(write(tmp_path, "apps.yaml", FULL))
    for valid in (sample, app.to_dict(), Application.model_validate(doc()).to_dict()):
        assert _check(schema, valid, defs) == []
        Application.model_validate(valid)
    # and the schema refuses what the model refuses
    for change in ({"selfheal": True}, {"interval": "5 minutes"}, {"retry": {"limit": "x"}}):
        wrong = doc(**change)
        assert _check(schema, wrong, defs) != []
        with pytest.raises(ValueError):
            Application.model_validate(wrong)
    wrong = doc()
    wrong["metadata"]["name"] = "Bad_Name"
    assert _check(schema, wrong, defs) != []


# -- end to end: the kwargs drive a real Reconciler ---------------------------------------


def test_reconciler_kwargs_sync_a_directory_into_a_mock_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting, namespace: web}\n"
        "data: {text: 'hello ${WHO}'}\n")
    (src / "old.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old, namespace: web}\ndata: {a: b}\n")
    store = f"mock:apps-{uuid.uuid4().hex[:8]}"
    app = Application.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "greeter", "namespace": "team-a"},
        "spec": {"source": {"url": f"dir:{src}"}, "target": {"url": store}, "prune": True,
                 "wait": {"timeout": "30s"}, "substitute": {"WHO": "world"},
                 "ignoreDifferences": [{"kind": "ConfigMap", "jsonPointers": ["/data/a"]}]}})
    kwargs = app.reconciler_kwargs()
    assert set(kwargs) == {"name", "prune", "wait", "wait_timeout", "ignore_differences", "substitute"}
    assert kwargs["wait_timeout"] == 30 and kwargs["wait"] is True

    def sync() -> gitops.SyncResult:
        with gitops.open_source(app.spec.source.url, **app.source_options) as source, \
                gitops.open_target(app.spec.target.url, **app.target_options) as target:
            reconciler = gitops.Reconciler(source, target, **app.reconciler_kwargs())
            assert reconciler.name == app.inventory_name
            return reconciler.sync()

    assert sync().succeeded
    with gitops.open_target(store) as target:
        objects = {key.name: obj for key, obj in target.objects().items()}  # type: ignore[attr-defined]
        assert objects["greeting"]["data"] == {"text": "hello world"}
        inventory = target.read_inventory(app.inventory_name)
        assert inventory is not None and {k.name for k in inventory.keys} == {"greeting", "old"}
    # the ignoreDifferences rule reached the engine: a change of /data/a alone is not drift
    (src / "old.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old, namespace: web}\ndata: {a: changed}\n")
    assert sync().plan.changes == ()
    (src / "old.yaml").unlink()
    pruned = sync()
    assert pruned.succeeded and [(c.action, c.key.name) for c in pruned.plan.changes] == [
        (gitops.Action.DELETE, "old")]
    with gitops.open_target(store) as target:
        assert {key.name for key in target.objects()} == {"greeting"}  # type: ignore[attr-defined]
