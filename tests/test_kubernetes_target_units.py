"""The Kubernetes target's pure parts: URLs, options, ApplySet format, errors, discovery."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import (
    ApplyError,
    ConflictError,
    InputError,
    InvalidURLError,
    TransientError,
    UnreachableError,
)
from gitops.masking import MASK
from gitops.model import Inventory, Resource, ResourceKey

pytest.importorskip("kubernetes")

from gitops.manifests import crd_kind
from gitops.options import validate_options
from gitops.targets.kubernetes.apply import (
    apply_body,
    apply_query,
    delete_body,
    missing_namespace,
)
from gitops.targets.kubernetes.applyset import (
    GROUP_KINDS_ANNOTATION,
    ID_LABEL,
    NAMESPACES_ANNOTATION,
    PART_OF_LABEL,
    TOOLING_ANNOTATION,
    ApplySet,
    applyset_id,
    doubtful,
    merge,
)
from gitops.targets.kubernetes.cache import matches
from gitops.targets.kubernetes.discovery import APIResource, Discovery
from gitops.targets.kubernetes.errors import (
    ConnectionFailed,
    NoAnswer,
    StatusError,
    TransientApplyError,
    object_error,
    scrub,
    secret_values,
    status_error,
)
from gitops.targets.kubernetes.http import RateLimiter
from gitops.targets.kubernetes.options import KubernetesOptions, parse_url

KEY = ResourceKey("apps", "Deployment", "shop", "web")

# -- URLs and options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "options"),
    [
        ("k8s:", "k8s:", {}),
        ("k8s://", "k8s:", {}),
        ("K8S://kind-dev", "k8s://kind-dev", {"context": "kind-dev"}),
        ("k8s://kubernetes-admin@kubernetes", "k8s://kubernetes-admin%40kubernetes",
         {"context": "kubernetes-admin@kubernetes"}),
        ("k8s://arn:aws:eks:eu-west-1:1234:cluster/prod",
         "k8s://arn:aws:eks:eu-west-1:1234:cluster/prod",
         {"context": "arn:aws:eks:eu-west-1:1234:cluster/prod"}),
        ("k8s://a%3Fb?force=false&qps=20", "k8s://a%3Fb?force=false&qps=20",
         {"context": "a?b", "force": "false", "qps": "20"}),
        ("k8s:?watch=true", "k8s:?watch=true", {"watch": "true"}),
    ],
)
def test_urls_parse(url: str, shown: str, options: dict[str, Any]) -> None:
    assert parse_url(url) == (shown, options)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("dir:x", "not a Kubernetes URL"),
        ("k8s:kind-dev", "k8s://kind-dev"),
        ("k8s://ctx#frag", "fragment"),
        ("k8s:?forse=true", "unknown option 'forse'"),
        ("k8s:?qps=1&qps=2", "given twice"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        parse_url(url)


def validate(url: str, options: dict[str, Any]) -> KubernetesOptions:
    return validate_options(KubernetesOptions, url, options)


def test_options_are_validated_with_their_names() -> None:
    opts = validate("k8s:", {"force": "false", "qps": "20", "watch": "1", "timeout": "5"})
    assert (opts.force, opts.qps, opts.watch, opts.timeout) == (False, 20.0, True, 5.0)
    assert KubernetesOptions().field_manager == "gitops"
    assert KubernetesOptions().inventory_namespace == "gitops-system"
    with pytest.raises(InvalidURLError, match="inventory_namespace"):
        validate("k8s:", {"inventory_namespace": "Not_A_Label"})
    with pytest.raises(InvalidURLError, match="propagation_policy"):
        validate("k8s:", {"propagation_policy": "Eventually"})
    with pytest.raises(InvalidURLError, match="qps"):
        validate("k8s:", {"qps": "-1"})


# -- the ApplySet ---------------------------------------------------------------------------


def test_applyset_id_follows_kubectl() -> None:
    # kubectl: "applyset-" + base64url(sha256("<name>.<namespace>.<kind>.<group>")) + "-v1"
    import hashlib

    digest = hashlib.sha256(b"gitops-inventory-shop.gitops-system.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert applyset_id("gitops-inventory-shop", "gitops-system") == expected
    assert ApplySet("shop", "gitops-system").id == expected
    assert len(expected) <= 63  # a label value


def test_parent_lists_group_kinds_and_other_namespaces() -> None:
    applyset = ApplySet("shop", "gitops-system")
    entries = {
        ResourceKey("apps", "Deployment", "shop", "web"): "apps/v1",
        ResourceKey("", "Secret", "gitops-system", "s"): "v1",
        ResourceKey("", "Namespace", "", "shop"): "v1",
    }
    parent = applyset.parent(Inventory(entries, "sha256:" + "a" * 64))
    metadata = parent["metadata"]
    assert metadata["name"] == "gitops-inventory-shop"
    assert metadata["labels"][ID_LABEL] == applyset.id
    assert metadata["annotations"][TOOLING_ANNOTATION].startswith("gitops/v")
    assert metadata["annotations"][GROUP_KINDS_ANNOTATION] == "Deployment.apps,Namespace,Secret"
    assert metadata["annotations"][NAMESPACES_ANNOTATION] == "shop"
    assert applyset.member_selector == f"{PART_OF_LABEL}={applyset.id}"


@pytest.mark.parametrize("count", [0, 3, 20_000])
def test_inventory_round_trips_exactly(count: int) -> None:
    applyset = ApplySet("x", "ns")
    entries = {
        ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", f"system:role.{i}:ü"):
            "rbac.authorization.k8s.io/v1"
        for i in range(count)
    }
    entries[ResourceKey("", "ConfigMap", "a", "with \"quotes\" and \\")] = "v1"
    parent = applyset.parent(Inventory(entries, "main@sha1:" + "0" * 40))
    size = len(json.dumps(parent))
    assert size < 900_000, f"{count} entries take {size} bytes: over the object size limit"
    assert ("binaryData" in parent) is (count == 20_000)
    read = applyset.read(json.loads(json.dumps(parent)))
    assert dict(read.entries) == entries and read.revision == "main@sha1:" + "0" * 40


def test_a_parent_of_another_tool_or_applyset_is_refused() -> None:
    applyset = ApplySet("x", "ns")
    parent = applyset.parent(Inventory({}, ""))
    parent["metadata"]["annotations"][TOOLING_ANNOTATION] = "kubectl/v1.32"
    with pytest.raises(ValueError, match="another tool"):
        applyset.read(parent)
    with pytest.raises(ValueError, match="not labelled"):
        ApplySet("y", "ns").read(applyset.parent(Inventory({}, "")))


def test_inventory_names_must_name_a_configmap() -> None:
    with pytest.raises(InputError):
        ApplySet("Not Valid", "ns")
    with pytest.raises(InputError):
        ApplySet("", "ns")


# -- apply requests --------------------------------------------------------------------------


def test_apply_body_strips_server_fields_without_touching_the_input() -> None:
    manifest = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n", "labels": {"app": "x"},
                     "resourceVersion": "7", "uid": "u", "managedFields": []},
        "data": {"k": "v"}, "status": {"x": 1},
    }
    before = json.dumps(manifest, sort_keys=True)
    body = apply_body(Resource.from_manifest(manifest))
    assert body["metadata"] == {"name": "c", "namespace": "n", "labels": {"app": "x"}}
    assert "status" not in body and body["data"] == {"k": "v"}
    assert json.dumps(manifest, sort_keys=True) == before


def test_apply_and_delete_requests_carry_the_options() -> None:
    options = KubernetesOptions(force=False, field_manager="team-a")
    assert apply_query(options, dry_run=True) == [
        ("fieldManager", "team-a"), ("fieldValidation", "Strict"), ("force", "false"),
        ("dryRun", "All"),
    ]
    assert delete_body(options, "u-1") == {
        "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
        "preconditions": {"uid": "u-1"},
    }
    assert crd_kind({"spec": {"group": "example.com", "names": {"kind": "Widget"}}}) == (
        "example.com", "Widget")
    assert crd_kind({"spec": "nonsense"}) is None


def test_a_missing_namespace_is_told_apart_from_a_missing_object() -> None:
    ns = StatusError("x", 404, "NotFound", 'namespaces "shop" not found',
                     {"name": "shop", "kind": "namespaces"})
    obj = StatusError("x", 404, "NotFound", 'configmaps "c" not found',
                      {"name": "c", "kind": "configmaps"})
    assert missing_namespace(ns, "shop") and not missing_namespace(obj, "shop")


# -- errors ----------------------------------------------------------------------------------


def _status(code: int, reason: str, message: str, **details: Any) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                       "reason": reason, "message": message, "details": details}).encode()


def test_status_bodies_become_typed_errors() -> None:
    error = status_error("srv: PATCH /x", 422, "Unprocessable Entity",
                         _status(422, "Invalid", 'Deployment.apps "web" is invalid: spec.replicas'),
                         None)
    assert not isinstance(error, TransientError)
    applied = object_error(error, KEY)
    assert type(applied) is ApplyError
    assert str(applied).startswith("Deployment.apps/shop/web: rejected by the API server: "
                                   'Deployment.apps "web" is invalid')

    throttled = status_error("srv", 429, "Too Many Requests", _status(429, "TooManyRequests",
                             "slow down", retryAfterSeconds=3), None)
    assert isinstance(throttled, TransientError) and throttled.retry_after == 3
    retried = object_error(throttled, KEY)
    assert isinstance(retried, TransientApplyError) and retried.retry_after == 3
    header = status_error("srv", 503, "Service Unavailable", b"<html>oops</html>", "7")
    assert header.retry_after == 7 and "oops" in header.message

    conflict = status_error("srv", 409, "Conflict", _status(
        409, "Conflict", 'Apply failed with 1 conflict: conflict with "kubectl-edit": .data.k',
        causes=[{"reason": "FieldManagerConflict", "field": ".data.k"}]), None)
    refused = object_error(conflict, KEY)
    assert isinstance(refused, ConflictError) and "force=true" in str(refused)

    forbidden = object_error(status_error("srv", 403, "Forbidden", _status(
        403, "Forbidden", 'deployments.apps "web" is forbidden: User "u" cannot patch'), None), KEY)
    assert type(forbidden) is ApplyError and "403 Forbidden" in str(forbidden)

    down = object_error(ConnectionFailed("https://k: API server unreachable", url="k8s:"), KEY)
    assert isinstance(down, UnreachableError) and isinstance(down, ApplyError)
    assert not isinstance(down, TransientError)  # the client already retried the connection
    assert down.url == "k8s:" and str(down).startswith("Deployment.apps/shop/web: https://k")
    slow = object_error(NoAnswer("https://k: GET /x: no answer in time"), KEY, url="k8s://c")
    assert isinstance(slow, TransientApplyError) and not isinstance(slow, UnreachableError)
    assert slow.url == "k8s://c"


def test_secret_values_never_reach_an_error() -> None:
    secret = Resource.from_manifest({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
        "stringData": {"url": "postgres://u:hunter2@db/x", "pin": "42"},
        "data": {"token": base64.b64encode(b"s3cr3t-token").decode()},
    })
    values = secret_values(secret)
    message = ('Secret "s" is invalid: data[url]: Invalid value: "postgres://u:hunter2@db/x", '
               'token s3cr3t-token, pin "42", base64 ' + base64.b64encode(
                   b"postgres://u:hunter2@db/x").decode() + " and 42 apples")
    cleaned = scrub(message, values)
    for leaked in ("hunter2", "s3cr3t-token", '"42"', base64.b64encode(b"postgres").decode()[:8]):
        assert leaked not in cleaned
    assert MASK in cleaned and "42 apples" in cleaned  # short values are masked when quoted
    error = object_error(StatusError("srv", 422, "Invalid", message), secret.key, values)
    assert "hunter2" not in str(error) and "s3cr3t-token" not in str(error)
    assert secret_values(Resource.from_manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})) == []


# -- small machinery -------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_paces() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, 2, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert slept == pytest.approx([0.1, 0.1])


def test_label_selector_matching() -> None:
    assert matches("a=1,b=2", {"a": "1", "b": "2", "c": "3"})
    assert not matches("a=1", {"a": "2"}) and not matches("a=1", None)


class _FakeClient:
    """Answers discovery paths from a dict; counts requests."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.paths: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> Any:
        self.paths.append(path)
        if path not in self.documents:
            raise StatusError(path, 404, "NotFound", "the server could not find it")
        return self.documents[path]


def _resources(*items: tuple[str, str, bool]) -> dict[str, Any]:
    return {"kind": "APIResourceList", "resources": [
        {"name": plural, "kind": kind, "namespaced": namespaced} for kind, plural, namespaced in items
    ] + [{"name": "deployments/status", "kind": "Deployment", "namespaced": True}]}


def test_discovery_is_lazy_cached_and_refreshed_on_a_miss() -> None:
    now = [0.0]
    client = _FakeClient({
        "/api/v1": _resources(("ConfigMap", "configmaps", True), ("Namespace", "namespaces", False)),
        "/apis": {"kind": "APIGroupList", "groups": [
            {"name": "apps", "versions": [{"version": "v1"}],
             "preferredVersion": {"version": "v1"}}]},
        "/apis/apps/v1": _resources(("Deployment", "deployments", True)),
    })
    discovery = Discovery(client, clock=lambda: now[0])  # type: ignore[arg-type]
    cm = discovery.resolve("", "ConfigMap")
    assert cm == APIResource("", "v1", "ConfigMap", "configmaps", True)
    assert cm.item("n", "a:b") == "/api/v1/namespaces/n/configmaps/a:b"
    deployments = discovery.resolve("apps", "Deployment")
    assert deployments is not None and deployments.collection() == "/apis/apps/v1/deployments"
    namespaces = discovery.resolve("", "Namespace")
    assert namespaces is not None and namespaces.namespaced is False
    assert client.paths == ["/api/v1", "/apis", "/apis/apps/v1"]

    assert discovery.resolve("example.com", "Widget") is None  # unknown group
    assert discovery.resolve("example.com", "Widget") is None  # within min_refresh: no request
    assert client.paths.count("/apis") == 1
    client.documents["/apis"]["groups"].append(
        {"name": "example.com", "versions": [{"version": "v1"}]})
    client.documents["/apis/example.com/v1"] = _resources(("Widget", "widgets", True))
    discovery.invalidate("example.com")  # a CRD of the group was applied
    widgets = discovery.resolve("example.com", "Widget", "v1")
    assert widgets is not None and widgets.plural == "widgets"


# -- the optional dependency -----------------------------------------------------------------


def test_gitops_works_without_the_kubernetes_package(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        sys.modules["kubernetes"] = None  # as if the extra were not installed
    """))
    script = textwrap.dedent("""
        import sys
        import gitops
        from gitops.errors import PluginError
        assert "kubernetes" not in [m for m in sys.modules if sys.modules[m] is not None]
        try:
            gitops.open_target("k8s:")
        except (PluginError, ImportError) as exc:
            print(exc)
        else:
            raise SystemExit("opened k8s: without the kubernetes package")
        from gitops.plugins import list_plugins
        info = [p for p in list_plugins() if p.name == "k8s"][0]
        print(info.status())
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install 'gitops-sdk[kubernetes]'") == 2, done.stdout


# -- merging a lost compare-and-swap ---------------------------------------------------------

_keys = st.builds(ResourceKey, st.just(""), st.just("ConfigMap"), st.just("ns"),
                  st.sampled_from("abcdefgh"))
_inventories = st.builds(Inventory, st.dictionaries(_keys, st.sampled_from(["v1", "v2"])),
                         st.sampled_from(["r1", "r2"]))


@given(wanted=_inventories, base=_inventories, current=_inventories, alive=st.sets(_keys))
def test_a_merge_keeps_everything_that_may_exist(
    wanted: Inventory, base: Inventory, current: Inventory, alive: set[ResourceKey]
) -> None:
    merged = merge(wanted, base, current, alive)
    assert dict(merged.entries).items() >= dict(wanted.entries).items()  # wanted wins
    assert merged.keys >= current.keys - base.keys  # the other writer's additions stay
    assert merged.keys >= doubtful(wanted, base, current) & alive  # made again: kept
    assert merged.keys <= wanted.keys | current.keys  # nothing invented
    assert not (merged.keys - wanted.keys) & (base.keys - alive)  # dropped only if gone
    assert merged.revision == wanted.revision


def test_a_parent_replacement_keeps_what_others_added() -> None:
    applyset = ApplySet("web", "gitops-system")
    live = {"metadata": {"name": applyset.name, "resourceVersion": "42",
                         "labels": {"team": "blue", ID_LABEL: "forged"},
                         "annotations": {"note": "x"}, "finalizers": ["keep"]}}
    body = applyset.replacement(live, Inventory({}, "r", "git+https://example.com/repo.git"))
    meta = body["metadata"]
    assert meta["resourceVersion"] == "42" and meta["finalizers"] == ["keep"]
    assert meta["labels"]["team"] == "blue" and meta["labels"][ID_LABEL] == applyset.id
    assert meta["annotations"]["note"] == "x"
    assert applyset.read(body).source == "git+https://example.com/repo.git"
