"""List types read from a server's OpenAPI v3 (``/openapi/v3`` and group-version documents)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from gitops.differs.lists import ChainListTypes
from gitops.model import ListType
from gitops.targets.kubernetes import KubernetesTarget
from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.http import KubeClient
from gitops.targets.kubernetes.openapi import ServerListTypes

DATA = Path(__file__).parent / "data" / "differ"
RECORDED = json.loads((DATA / "apis__apiregistration.k8s.io__v1_openapi.json").read_text())
HASH = "E19CC93A116982CE5422FC42B590A8AFAD92CDE9AE4D59B5CAAD568F083AD07946E6CB5817531680BCE6E21"


def widget_document(list_type: str = "map") -> dict[str, Any]:
    """A custom resource's document in the served format (the API server inlines a CRD's
    schema under ``components.schemas`` and tags it and its operations with the GVK)."""
    gvk = {"group": "example.com", "version": "v1", "kind": "Widget"}
    ports: dict[str, Any] = {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}}}, "x-kubernetes-list-type": list_type}
    if list_type == "map":
        ports["x-kubernetes-list-map-keys"] = ["name"]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {"/apis/example.com/v1/namespaces/{namespace}/widgets/{name}": {
                "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk}}},
            "components": {"schemas": {"com.example.v1.Widget": {
                "type": "object", "x-kubernetes-group-version-kind": [gvk],
                "properties": {"spec": {"type": "object", "properties": {"ports": ports}}}}}}}


class FakeServer:
    """Answers the KubeClient calls ServerListTypes makes, and records them."""

    def __init__(self) -> None:
        self.server = "https://127.0.0.1:6443"
        self.documents: dict[str, Any] = {
            "/openapi/v3/apis/apiregistration.k8s.io/v1": RECORDED,
            "/openapi/v3/apis/example.com/v1": widget_document(),
        }
        self.hashes = {"apis/apiregistration.k8s.io/v1": HASH, "apis/example.com/v1": "W1"}
        self.calls: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self.fail: set[str] = set()  # 503
        self.missing: set[str] = set()  # 404

    def index(self) -> dict[str, Any]:
        paths = {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
                 for key, digest in self.hashes.items()}
        paths.update({"api": {"serverRelativeURL": "/openapi/v3/api?hash=A"},
                      "apis": {"serverRelativeURL": "/openapi/v3/apis?hash=B"},
                      "apis/example.com": {"serverRelativeURL": "/openapi/v3/apis/example.com?h=C"},
                      ".well-known/openid-configuration": {
                          "serverRelativeURL": "/openapi/v3/.well-known/openid-configuration?h=D"},
                      "version": {"serverRelativeURL": "/openapi/v3/version?hash=E"}})
        return {"paths": paths}

    def request(self, method: str, path: str, *, query: Any = (), verb: str = "",
                **_: Any) -> Any:
        assert method == "GET" and verb == "openapi"
        self.calls.append((path, tuple(query)))
        if path in self.fail:
            raise StatusError(f"GET {path}", 503, "ServiceUnavailable", "try later")
        if path == "/openapi/v3" and path not in self.missing:
            return self.index()
        if path not in self.documents:
            raise StatusError(f"GET {path}", 404, "NotFound",
                              "the server could not find the requested resource")
        return self.documents[path]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def served(fake: FakeServer, clock: Clock | None = None) -> ServerListTypes:
    return ServerListTypes(cast(KubeClient, fake), clock=clock or Clock())


def test_a_recorded_document_gives_its_list_types_lazily_and_once(fake: FakeServer) -> None:
    types = served(fake)
    assert fake.calls == []  # nothing is sent before the first question
    conditions = ("status", "conditions")
    assert types.list_type("apiregistration.k8s.io", "APIService", conditions) == ListType(
        "map", ("type",))
    assert types.list_type("apiregistration.k8s.io", "APIService", ("metadata", "finalizers")) \
        == ListType("set")
    assert types.list_type("apiregistration.k8s.io", "APIService", ("spec", "caBundle")) is None
    assert fake.calls == [("/openapi/v3", ()),
                          ("/openapi/v3/apis/apiregistration.k8s.io/v1", (("hash", HASH),))]
    assert types.knows("apiregistration.k8s.io", "APIService")
    assert len(fake.calls) == 2  # cached per group-version and kind


def test_custom_resources_and_unknown_kinds(fake: FakeServer) -> None:
    types = served(fake)
    assert types.list_type("example.com", "Widget", ("spec", "ports")) == ListType("map", ("name",))
    assert types.list_type("example.com", "Gadget", ("spec", "ports")) is None
    assert not types.knows("nowhere.io", "Thing")
    assert not any("nowhere" in path for path, _ in fake.calls)  # no such group: no request


def test_documents_are_read_again_only_when_their_hash_changes(fake: FakeServer) -> None:
    clock = Clock()
    types = served(fake, clock)
    path = ("spec", "ports")
    assert types.list_type("example.com", "Widget", path) == ListType("map", ("name",))
    clock.now = 30
    assert types.list_type("example.com", "Widget", path) == ListType("map", ("name",))
    assert len(fake.calls) == 2
    clock.now = 61  # the index is read again; the document is unchanged
    assert types.list_type("example.com", "Widget", path) == ListType("map", ("name",))
    assert [p for p, _ in fake.calls].count("/openapi/v3/apis/example.com/v1") == 1
    fake.documents["/openapi/v3/apis/example.com/v1"] = widget_document("set")
    fake.hashes["apis/example.com/v1"] = "W2"  # the CRD changed
    clock.now = 122
    assert types.list_type("example.com", "Widget", path) == ListType("set")
    assert ("/openapi/v3/apis/example.com/v1", (("hash", "W2"),)) in fake.calls


def test_failures_mean_unknown_and_are_retried_later(
    fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    types = served(fake, clock)
    fake.fail.add("/openapi/v3/apis/example.com/v1")
    with caplog.at_level(logging.WARNING, logger="gitops.targets.kubernetes"):
        assert types.list_type("example.com", "Widget", ("spec", "ports")) is None
    assert "compare by position" in caplog.text
    fake.fail.clear()
    clock.now = 61
    assert types.list_type("example.com", "Widget", ("spec", "ports")) == ListType("map", ("name",))


def test_a_server_without_openapi_v3(fake: FakeServer) -> None:
    fake.documents.clear()
    fake.missing.add("/openapi/v3")
    types = served(fake)
    assert types.list_type("example.com", "Widget", ("spec", "ports")) is None


@pytest.fixture
def target(kube_emulator_session: Any) -> Iterator[KubernetesTarget]:
    opened = KubernetesTarget("k8s:", kubeconfig=str(kube_emulator_session.kubeconfig_path))
    yield opened
    opened.close()


def test_the_kubernetes_target_declares_list_types(
    target: KubernetesTarget, kube_emulator_session: Any
) -> None:
    policy = target.drift_policy()
    assert isinstance(policy.list_types, ChainListTypes)
    assert policy.list_types is target.drift_policy().list_types  # one cache for every plan
    kube_emulator_session.reset_counts()
    containers = ("spec", "template", "spec", "containers")
    assert policy.list_types.list_type("apps", "Deployment", containers) == ListType(
        "map", ("name",))
    assert kube_emulator_session.requests == []  # built-in kinds cost no request
    policy.list_types.list_type("example.com", "Widget", ("spec", "ports"))
    assert any(path == "/openapi/v3" for _, path, _ in kube_emulator_session.requests)
