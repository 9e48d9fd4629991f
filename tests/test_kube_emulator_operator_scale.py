"""Scale: 1,000 custom objects and 10,000 ConfigMaps over HTTP stay quick to create and to list.

Prints the measured figures (run with ``-s`` to see them). The bounds are loose enough for a
busy CI machine and tight enough to catch a per-request scan of every stored object.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from gitops.testing.kube import KubeEmulator

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.gitops.dev"},
    "spec": {"group": "gitops.dev", "scope": "Namespaced",
             "names": {"plural": "applications", "singular": "application", "kind": "Application"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "additionalPrinterColumns": [{"name": "SYNC", "type": "string", "jsonPath": ".status.sync"}],
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Client:
    """One keep-alive HTTP connection, as client-go and kubectl use."""

    def __init__(self, emu: KubeEmulator) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)

    def raw(self, method: str, path: str, body: Any = None, accept: str = "application/json") -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json", "Accept": accept})
        response = self.conn.getresponse()
        raw = response.read()
        assert response.status in (200, 201), (response.status, raw[:300])
        return raw

    def __call__(self, method: str, path: str, body: Any = None, accept: str = "application/json") -> Any:
        return json.loads(self.raw(method, path, body, accept))

    def timed_get(self, path: str, accept: str = "application/json") -> tuple[float, Any]:
        """Seconds from request to the last byte of the answer (decoding it is the client's cost), and the answer."""
        began = time.perf_counter()
        raw = self.raw("GET", path, accept=accept)
        return time.perf_counter() - began, json.loads(raw)


def test_thousands_of_objects_are_created_and_listed_quickly(kube_emulator: KubeEmulator) -> None:
    client = Client(kube_emulator)
    client("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    for ns in ("apps", "configs", "small"):
        client("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    apps = "/apis/gitops.dev/v1alpha1/namespaces/apps/applications"
    began = time.perf_counter()
    for i in range(1000):
        client("POST", apps, {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": f"app-{i:04d}"},
                              "spec": {"source": {"url": f"git+https://example.com/{i}.git"}, "target": {"url": "k8s:"}}})
    create_apps = time.perf_counter() - began
    batches: list[float] = []
    for batch in range(10):
        began = time.perf_counter()
        for i in range(1000):
            client("POST", "/api/v1/namespaces/configs/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{batch}-{i:04d}", "labels": {"b": str(batch)}},
                    "data": {"key": "value" * 4}})
        batches.append(time.perf_counter() - began)
    client("POST", "/api/v1/namespaces/small/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})

    list_apps, listed_apps = client.timed_get("/apis/gitops.dev/v1alpha1/applications")
    table_apps, table = client.timed_get("/apis/gitops.dev/v1alpha1/applications", accept=TABLE)
    list_cms, listed_cms = client.timed_get("/api/v1/namespaces/configs/configmaps")
    list_small, small = client.timed_get("/api/v1/namespaces/small/configmaps")
    list_selected, selected = client.timed_get("/api/v1/configmaps?labelSelector=b%3D3")
    page, first = client.timed_get("/api/v1/namespaces/configs/configmaps?limit=500")
    # (every namespace also holds its kube-root-ca.crt ConfigMap)
    assert len(listed_apps["items"]) == 1000 and len(table["rows"]) == 1000
    assert len(listed_cms["items"]) == 10001 and len(selected["items"]) == 1000 and len(first["items"]) == 500
    assert [i["metadata"]["name"] for i in small["items"]] == ["kube-root-ca.crt", "one"]

    create_cms = sum(batches)
    print(f"\ncreate 1,000 Applications: {create_apps:.2f} s ({create_apps:.2f} ms each)"
          f"\ncreate 10,000 ConfigMaps: {create_cms:.2f} s ({create_cms / 10:.2f} ms each;"
          f" first 1,000 {batches[0]:.2f} s, last 1,000 {batches[-1]:.2f} s)"
          f"\nLIST 1,000 Applications: {list_apps * 1000:.0f} ms (as a Table: {table_apps * 1000:.0f} ms)"
          f"\nLIST 10,000 ConfigMaps: {list_cms * 1000:.0f} ms; 1,000 by label selector: {list_selected * 1000:.0f} ms;"
          f" a page of 500: {page * 1000:.0f} ms; a namespace of 2: {list_small * 1000:.1f} ms")
    assert create_apps < 5 and create_cms < 40  # < 5 ms per object, on a slow machine
    assert batches[-1] < 3 * batches[0] + 0.5  # creating stays O(1) as the store grows
    assert list_apps < 0.5 and table_apps < 0.5 and list_cms < 2 and list_selected < 0.5 and page < 0.5
    assert list_small < 0.1  # a small namespace is not slowed by 10,000 objects elsewhere
