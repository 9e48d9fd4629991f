"""bench/operator.py's counting relay counts each request the way the budgets do, and
relays requests, bodies, answers and watch streams unchanged."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("kubernetes")
kube = pytest.importorskip("gitops.testing.kube")

from gitops.targets.kubernetes.http import (  # noqa: E402
    APPLY_PATCH,
    KubeClient,
    load_api_client,
)

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if "k8s_requests" not in sys.modules:  # bench/operator.py imports it by bare name
        _load("k8s_requests", BENCH / "k8s_requests.py")
    return _load("bench_operator", BENCH / "operator.py")  # not "operator": the stdlib's


@pytest.fixture
def relayed(bench: ModuleType, tmp_path: Path) -> Iterator[tuple[Any, KubeClient, Any]]:
    with kube.KubeEmulator() as emulator, bench.counting_relay(emulator.url) as relay:
        kubeconfig = bench.write_kubeconfig(tmp_path / "kubeconfig", relay.url)
        client = KubeClient(load_api_client("k8s:", kubeconfig, None).api_client)
        try:
            yield emulator, client, relay
        finally:
            client.close()


def test_the_relay_counts_requests_by_verb_and_passes_them_through(
    relayed: tuple[Any, KubeClient, Any]
) -> None:
    emulator, client, relay = relayed
    relay.take()
    path = "/api/v1/namespaces/default/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "relayed", "namespace": "default"},
            "data": {"big": "x" * 200_000}}  # a body larger than one read
    created = client.request("POST", path, body=body)
    assert created["data"]["big"] == "x" * 200_000
    client.request("PATCH", f"{path}/relayed", query=[("fieldManager", "t"), ("force", "true"), ("dryRun", "All")],
                   body={**body, "data": {"big": "y"}}, content_type=APPLY_PATCH)
    assert client.request("GET", f"{path}/relayed")["data"]["big"] == "x" * 200_000
    assert any(o["metadata"]["name"] == "relayed" for o in client.request("GET", path)["items"])
    client.request("DELETE", f"{path}/relayed")
    assert relay.take() == {"create": 1, "dry-run": 1, "get": 1, "list": 1, "delete": 1}
    assert emulator.counts()["create"] == 1  # it reached the emulator, once


def test_the_relay_streams_a_watch(relayed: tuple[Any, KubeClient, Any]) -> None:
    emulator, client, relay = relayed
    path = "/api/v1/namespaces/default/configmaps"
    stream = client.watch(path, [("resourceVersion", "0")], timeout_seconds=10)
    events: list[dict[str, Any]] = []
    seen = threading.Event()

    def follow() -> None:
        for event in stream:
            events.append(event)
            if event["object"]["metadata"]["name"] == "watched":
                seen.set()
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    emulator.expect_ok("POST", path, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "watched"}})
    assert seen.wait(10), events
    stream.close()
    reader.join(5)
    assert relay.take()["watch"] == 1
