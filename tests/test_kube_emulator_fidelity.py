"""Emulator fidelity where drift is decided: canonical quantities, empty Secret values,
the recorded OpenAPI v3 documents (list types), CRD documents, and every 1.32 group.

Quantity expectations are the tables of apimachinery's ``pkg/api/resource/quantity_test.go``
at tag ``kubernetes-1.32.0`` (test names given per table); the rest talks to the emulator
over HTTP, with the real ``kubectl`` where it matters.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops.quantity import canonical_quantity
from gitops.testing.kube import KubeEmulator, builtin_openapi
from gitops.testing.kube.quantities import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    FORMAT_WRONG,
    QuantityError,
    canonical,
    parse,
)

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
APPLY = "application/apply-patch+yaml"
NS = "default"

#: the group-versions a default Kubernetes 1.32 server serves (``kubectl api-versions``)
GROUP_VERSIONS_1_32 = {
    "v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
    "apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2",
    "batch/v1", "certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1", "policy/v1",
    "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}


# -- quantities: apimachinery's own expectations -----------------------------------------------

# TestQuantityParseEmit
PARSE_EMIT = [
    ("1Ki", "1Ki"), ("1Mi", "1Mi"), ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1000M", "1G"),
    (".001Ki", "1024m"), (".000001Ki", "1024u"), (".000000001Ki", "1024n"), (".000000000001Ki", "2n"),
]

# TestQuantityString: (canonical text, an alternate spelling that canonicalizes to it)
STRING = [
    ("1Gi", "1024Mi"), ("300Mi", "307200Ki"), ("6Ki", ""), ("1001Gi", "1025024Mi"), ("1Ti", "1024Gi"),
    ("5", "5000m"), ("500m", "0.5"), ("1G", "1000M"), ("1G", "0.001T"), ("1m", "1000u"), ("80m", ""),
    ("1080m", "1.08"), ("1080m", "1080000000n"), ("300M", ""), ("1T", ""), ("1234567M", ""),
    ("1234567m", ""), ("3k", ""), ("1025", ""), ("0", ""), ("1e9", ".001e12"), ("1e-3", "0.001e0"),
    ("1e-9", "1000e-12"), ("80e-3", ""), ("300e6", ""), ("1e12", ""), ("1e3", ""), ("3e3", ""),
    ("0", "00"), ("1n", ""), ("80n", ""), ("1080n", ""), ("1u", ""), ("80u", ""), ("1080u", ""),
]

# TestQuantityParse: input -> (unscaled value, scale exponent, format)
PARSE = [
    ("0", 0, 0, DECIMAL_SI), ("0n", 0, 0, DECIMAL_SI), ("0Ki", 0, 0, BINARY_SI), ("0Ti", 0, 0, BINARY_SI),
    ("1", 1, 0, DECIMAL_SI), ("1Ki", 1024, 0, BINARY_SI), ("7Mi", 7 * 2**20, 0, BINARY_SI),
    ("3Ei", 3 * 2**60, 0, BINARY_SI), ("100Ti", 100 * 2**40, 0, BINARY_SI), ("5n", 5, -9, DECIMAL_SI),
    ("50k", 5, 4, DECIMAL_SI), ("300T", 3, 14, DECIMAL_SI), ("1E", 1, 18, DECIMAL_SI),
    ("1E-3", 1, -3, DECIMAL_EXPONENT), ("1e3", 1, 3, DECIMAL_EXPONENT), ("1E18", 1, 18, DECIMAL_EXPONENT),
    ("1e14", 1, 14, DECIMAL_EXPONENT), ("100.035k", 100035, 0, DECIMAL_SI), ("0.001", 1, -3, DECIMAL_SI),
    ("0.0005k", 5, -1, DECIMAL_SI), ("0.00050k", 5, -1, DECIMAL_SI), ("0.50000", 5, -1, DECIMAL_SI),
    ("0.5e-2", 5, -3, DECIMAL_EXPONENT), ("10.035M", 10035, 3, DECIMAL_SI), ("1.3E+6", 13, 5, DECIMAL_EXPONENT),
    ("1.53E12", 153, 10, DECIMAL_EXPONENT), ("9.01", 901, -2, DECIMAL_SI), ("7.123456M", 7123456, 0, DECIMAL_SI),
    ("1.01E", 101, 16, DECIMAL_SI), ("3.001n", 4, -9, DECIMAL_SI), ("1.1E-9", 2, -9, DECIMAL_EXPONENT),
    ("0.0000000001", 1, -9, DECIMAL_SI), ("0.5e-9", 1, -9, DECIMAL_EXPONENT), ("0.9n", 1, -9, DECIMAL_SI),
    ("0.00000012345", 124, -9, DECIMAL_SI), ("9Ei", 2**63 - 1, 0, BINARY_SI),
    ("9223372036854775807Ki", 2**63 - 1, 0, BINARY_SI), ("12E", 12, 18, DECIMAL_SI),
    ("100.035Ki", 10243584, -2, BINARY_SI), ("0.5Mi", 2**19, 0, BINARY_SI), ("0.025Ti", 274877906944, -1, BINARY_SI),
    ("0.000000000001Ki", 2, -9, DECIMAL_SI), (".001", 1, -3, DECIMAL_SI), (".0001k", 100, -3, DECIMAL_SI),
    ("1.", 1, 0, DECIMAL_SI), ("1.G", 1, 9, DECIMAL_SI),
]

# TestQuantityParse's invalid inputs (ParseQuantity itself does not trim white space)
INVALID = ["1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", ""]


@pytest.mark.parametrize(("text", "expected"), PARSE_EMIT)
def test_parse_emit(text: str, expected: str) -> None:
    assert canonical(text) == expected
    assert canonical("-" + text) == "-" + expected


@pytest.mark.parametrize(("expected", "alternate"), STRING)
def test_canonical_text_is_kept_and_alternates_canonicalize(expected: str, alternate: str) -> None:
    assert parse(expected).cached == expected  # "did not copy canonical string on parse"
    assert canonical(expected) == expected
    if alternate:
        assert parse(alternate).cached is None
        assert canonical(alternate) == expected


@pytest.mark.parametrize(("text", "unscaled", "scale", "fmt"), PARSE)
@pytest.mark.parametrize("sign", ["", "-", "+"])
def test_parse_values_and_formats(text: str, unscaled: int, scale: int, fmt: str, sign: str) -> None:
    quantity = parse(sign + text)
    expected = Decimal(unscaled).scaleb(scale) * (-1 if sign == "-" else 1)
    assert (quantity.value, quantity.format) == (expected, fmt)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse(text)


@pytest.mark.parametrize("value", [" 1", "1 ", 1, "10", -1, " -1"])
def test_json_white_space_and_numbers(value: object) -> None:
    """TestJSONWhitespace: ``Quantity.UnmarshalJSON`` trims, and JSON numbers are their text."""
    assert canonical(value) == str(value).strip()


def test_what_the_issue_asks_for_and_the_quirks_go_keeps() -> None:
    assert [canonical(v) for v in ("1000m", "1024Mi", "0.5", 0.5, 1000, "1000", "1.5Gi")] == \
        ["1", "1Gi", "500m", "500m", "1k", "1k", "1536Mi"]
    # an exponent stays an exponent: "1e3" is already canonical (TestQuantityString)
    assert canonical("1e3") == "1e3" and canonical("1000e0") == "1e3"
    # ParseQuantity's fast path keeps text it considers canonical, sign and zeros included
    assert [canonical(v) for v in ("+1", "1.500", "01Ki")] == ["+1", "1.500", "01Ki"]
    # small or fractional binary quantities print in decimal
    assert [canonical(v) for v in ("0.5Ki", "1.5Ki", "1025Ki")] == ["512", "1536", "1025Ki"]
    with pytest.raises(QuantityError, match=r"must match the regular expression"):
        parse(True)


@given(st.decimals(min_value=Decimal(-10) ** 9, max_value=Decimal(10) ** 9, places=6, allow_nan=False,
                   allow_infinity=False),
       st.sampled_from(["", "m", "k", "M", "Ki", "Mi", "Gi", "e3", "e-2"]))
def test_canonical_form_reads_back_to_itself_with_the_same_value(number: Decimal, suffix: str) -> None:
    text = f"{number}{suffix}"
    stored = canonical(text)
    assert canonical(stored) == stored
    # the value agrees with gitops.quantity, which differs use (both round up to a nano)
    assert parse(stored).value == parse(text).value == canonical_quantity(text)


# -- quantities stored by the emulator -----------------------------------------------------------


def deployment(name: str, resources: dict[str, Any], **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": resources}], **pod}}},
    }


def ok(emu: KubeEmulator, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    code, out = emu.request(method, path, body, **kwargs)
    assert code in (200, 201), (code, out)
    return out


def apply(emu: KubeEmulator, path: str, obj: dict[str, Any], manager: str) -> Any:
    return ok(emu, "PATCH", f"{path}?fieldManager={manager}", yaml.safe_dump(obj), content_type=APPLY)


def resources_of(obj: dict[str, Any]) -> Any:
    return obj["spec"]["template"]["spec"]["containers"][0]["resources"]


DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SENT = {"requests": {"cpu": "1000m", "memory": "1024Mi", "ephemeral-storage": 0.5},
        "limits": {"cpu": 2, "memory": "1.5Gi", "nvidia.com/gpu": "1e3"}}
STORED = {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "500m"},
          "limits": {"cpu": "2", "memory": "1536Mi", "nvidia.com/gpu": "1e3"}}


def test_create_put_and_patch_store_canonical_quantities(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    created = ok(emu, "POST", DEPLOYMENTS, deployment("web", SENT, volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "2048Mi"}}]))
    assert resources_of(created) == STORED
    assert created["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "2Gi"
    assert resources_of(ok(emu, "GET", f"{DEPLOYMENTS}/web")) == STORED
    patched = ok(emu, "PATCH", f"{DEPLOYMENTS}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "0.25"}}}]}}}},
        content_type="application/strategic-merge-patch+json")
    assert resources_of(patched)["requests"]["cpu"] == "250m"
    rv = ok(emu, "GET", f"{DEPLOYMENTS}/web")["metadata"]["resourceVersion"]  # after the stand-in controller
    # writing the same values in another spelling changes nothing, not even the resourceVersion
    same = ok(emu, "PATCH", f"{DEPLOYMENTS}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "1048576Ki"}}}]}}}},
        content_type="application/strategic-merge-patch+json")
    assert same["metadata"]["resourceVersion"] == rv


def test_server_side_apply_compares_canonical_quantities(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    assert resources_of(apply(emu, f"{DEPLOYMENTS}/api", deployment("api", SENT), "gitops")) == STORED
    first = ok(emu, "GET", f"{DEPLOYMENTS}/api")  # after the stand-in controller wrote the status
    again = apply(emu, f"{DEPLOYMENTS}/api", deployment("api", STORED), "gitops")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    # another manager applying the same values in another spelling is no conflict (the values are equal)
    other = {"requests": {"cpu": "1.0"}}
    code, _ = emu.request("PATCH", f"{DEPLOYMENTS}/api?fieldManager=hpa-like", yaml.safe_dump(deployment("api", other)),
                          content_type=APPLY)
    assert code == 200
    code, body = emu.request("PATCH", f"{DEPLOYMENTS}/api?fieldManager=hpa-like",
                             yaml.safe_dump(deployment("api", {"requests": {"cpu": "1.5"}})), content_type=APPLY)
    assert code == 409 and "resources.requests.cpu" in body["message"]


def test_quantities_of_other_built_in_kinds(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    pvc = ok(emu, "POST", f"/api/v1/namespaces/{NS}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10240Mi"}}}})
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    quota = ok(emu, "POST", f"/api/v1/namespaces/{NS}/resourcequotas", {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "4000m", "requests.memory": "8192Mi", "pods": 10}}})
    assert quota["spec"]["hard"] == {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "10"}
    limits = ok(emu, "POST", f"/api/v1/namespaces/{NS}/limitranges", {
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "0.5"}, "max": {"memory": "1000M"}}]}})
    assert limits["spec"]["limits"][0]["default"] == {"cpu": "500m"}
    assert limits["spec"]["limits"][0]["max"] == {"memory": "1G"}
    hpa = ok(emu, "POST", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"},
                                                        "target": {"type": "AverageValue", "averageValue": "1000m"}}}]}})
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "1"
    # not a Quantity in the schema: left alone (ConfigMap data, a label, a CRD's field)
    cm = ok(emu, "POST", f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"size": "1000m"}},
        "data": {"cpu": "1000m"}})
    assert cm["data"] == {"cpu": "1000m"} and cm["metadata"]["labels"] == {"size": "1000m"}


def test_a_custom_resource_is_stored_as_sent(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    ok(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd())
    widget = ok(emu, "POST", f"/apis/example.com/v1/namespaces/{NS}/widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"ports": [{"name": "http", "size": "1024Mi"}]}})
    assert widget["spec"]["ports"][0]["size"] == "1024Mi"


def test_a_value_that_is_not_a_quantity_is_a_bad_request(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    code, body = emu.request("POST", DEPLOYMENTS, deployment("bad", {"limits": {"cpu": "lots"}}))
    assert code == 400 and body["reason"] == "BadRequest"
    assert body["message"] == f'Deployment in version "v1" cannot be handled as a Deployment: {FORMAT_WRONG}'
    assert emu.request("GET", f"{DEPLOYMENTS}/bad")[0] == 404


@needs_kubectl
def test_kubectl_sees_canonical_quantities_and_no_diff(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.json"  # JSON keeps "1e3" a string (YAML 1.1 would make it a float)
    manifest.write_text(json.dumps(deployment("k", SENT)))
    kubectl(kube_emulator, tmp_path, "apply", "--server-side", "-f", str(manifest))
    shown = json.loads(kubectl(kube_emulator, tmp_path, "get", "deployment", "k", "-n", NS, "-o", "json").stdout)
    assert resources_of(shown) == STORED
    # kubectl diff sends the manifest (1000m, 1024Mi) as a dry-run apply: nothing differs
    assert kubectl(kube_emulator, tmp_path, "diff", "--server-side", "-f", str(manifest), check=False).returncode == 0
    manifest.write_text(json.dumps(deployment("k", {**SENT, "requests": {**SENT["requests"], "cpu": "1500m"}})))
    changed = kubectl(kube_emulator, tmp_path, "diff", "--server-side", "-f", str(manifest), check=False)
    assert changed.returncode == 1 and "cpu: 1500m" in changed.stdout


# -- empty Secret values ---------------------------------------------------------------------------


def secret(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, **fields}


SECRETS = f"/api/v1/namespaces/{NS}/secrets"


def test_empty_secret_values_are_empty_strings_by_default(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    assert ok(emu, "POST", SECRETS, secret("a", data={"k": "", "n": None, "v": "YQ=="}))["data"] == \
        {"k": "", "n": "", "v": "YQ=="}
    assert apply(emu, f"{SECRETS}/b", secret("b", data={"k": ""}), "gitops")["data"] == {"k": ""}


def test_null_empty_bytes_serves_null_like_argo_cds_recorded_cluster() -> None:
    with KubeEmulator(null_empty_bytes=True) as emu:
        created = ok(emu, "POST", SECRETS, secret("a", data={"k": "", "v": "YQ=="}, stringData={"s": ""}))
        assert created["data"] == {"k": None, "v": "YQ==", "s": None}
        first = apply(emu, f"{SECRETS}/b", secret("b", data={"k": ""}), "gitops")
        assert first["data"] == {"k": None}
        assert first["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:k": {}}}
        again = apply(emu, f"{SECRETS}/b", secret("b", data={"k": ""}), "gitops")
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        binary = ok(emu, "POST", f"/api/v1/namespaces/{NS}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"t": ""}, "binaryData": {"b": ""}})
        assert binary["data"] == {"t": ""} and binary["binaryData"] == {"b": None}
        raw = emu.request("GET", f"{SECRETS}/a")[1]
        assert raw["data"]["k"] is None


# -- OpenAPI v3 ------------------------------------------------------------------------------------


def test_openapi_index_lists_every_group_version_with_content_hashes(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    index = ok(emu, "GET", "/openapi/v3")["paths"]
    assert {key.removeprefix("api/").removeprefix("apis/") for key in index} == GROUP_VERSIONS_1_32
    url = index["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    code, raw = fetch(emu, url)
    assert code == 200
    assert url.rsplit("=", 1)[1] == hashlib.sha512(raw).hexdigest().upper()
    # the recorded bytes, unmodified (sha256 from data/PROVENANCE.md)
    assert hashlib.sha256(raw).hexdigest() == "e70786b2b36d53fa99dd72910f2ef82a12384abc8d28ce144ebc9899c32b109c"
    assert emu.request("GET", "/openapi/v3/apis/nope.example.com/v1")[0] == 404


def test_openapi_carries_the_list_type_extensions(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    core = ok(emu, "GET", "/openapi/v3/api/v1")["components"]["schemas"]
    containers = core["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    ports = core["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    apps = ok(emu, "GET", "/openapi/v3/apis/apps/v1")
    deployment_schema = apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment_schema["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def widget_crd() -> dict[str, Any]:
    ports = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "protocol"],
             "items": {"type": "object", "required": ["name"], "properties": {
                 "name": {"type": "string"}, "protocol": {"type": "string", "default": "TCP"},
                 "size": {"x-kubernetes-int-or-string": True}}}}
    tags = {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"ports": ports, "tags": tags}}}}}}]},
    }


def test_a_crd_is_served_in_openapi_with_its_list_types(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    ok(emu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd())
    index = ok(emu, "GET", "/openapi/v3")["paths"]
    url = index["apis/example.com/v1"]["serverRelativeURL"]
    code, raw = fetch(emu, url)
    assert code == 200 and url.rsplit("=", 1)[1] == hashlib.sha512(raw).hexdigest().upper()
    doc = json.loads(raw)
    widget = doc["components"]["schemas"]["com.example.v1.Widget"]
    spec = widget["properties"]["spec"]["properties"]
    assert spec["ports"]["x-kubernetes-list-type"] == "map"
    assert spec["ports"]["x-kubernetes-list-map-keys"] == ["name", "protocol"]
    assert spec["tags"]["x-kubernetes-list-type"] == "set"
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "kind": "Widget", "version": "v1"}]
    assert widget["properties"]["metadata"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["com.example.v1.WidgetList"]["x-kubernetes-group-version-kind"][0]["kind"] == "WidgetList"
    paths = doc["paths"]
    assert set(paths) == {
        "/apis/example.com/v1/namespaces/{namespace}/widgets",
        "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}",
        "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status",
        "/apis/example.com/v1/widgets",
    }
    patch = paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert patch["operationId"] == "patchExampleComV1NamespacedWidget"
    assert set(patch["requestBody"]["content"]) == {"application/json-patch+json", "application/merge-patch+json",
                                                    "application/apply-patch+yaml"}
    assert patch["x-kubernetes-group-version-kind"] == {"group": "example.com", "kind": "Widget", "version": "v1"}
    ok(emu, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert "apis/example.com/v1" not in ok(emu, "GET", "/openapi/v3")["paths"]
    assert emu.request("GET", "/openapi/v3/apis/example.com/v1")[0] == 404


@needs_kubectl
def test_kubectl_explain_reads_the_recorded_schemas(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    out = kubectl(kube_emulator, tmp_path, "explain", "deployment.spec.template.spec.containers.resources").stdout
    assert "ResourceRequirements" in out and "limits" in out
    ok(kube_emulator, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd())
    out = kubectl(kube_emulator, tmp_path, "explain", "widgets.spec.ports").stdout
    assert "protocol" in out and "-required-" in out


# -- every built-in group and kind of 1.32 -----------------------------------------------------------


@needs_kubectl
def test_kubectl_lists_every_1_32_group_and_apiservice(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    versions = set(kubectl(kube_emulator, tmp_path, "api-versions").stdout.split())
    assert versions == GROUP_VERSIONS_1_32
    rows = [line.split() for line in kubectl(kube_emulator, tmp_path, "api-resources").stdout.splitlines()[1:]]
    by_kind = {row[-1]: row for row in rows}
    assert by_kind["APIService"][0] == "apiservices" and by_kind["APIService"][-3] == "apiregistration.k8s.io/v1"
    for kind in ("FlowSchema", "EndpointSlice", "PriorityClass", "RuntimeClass", "CertificateSigningRequest",
                 "ValidatingAdmissionPolicy", "TokenReview", "SubjectAccessReview"):
        assert kind in by_kind, kind


#: bodies the emulator's validation needs (everything else is created from metadata alone)
BODIES: dict[str, dict[str, Any]] = {
    "Pod": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    "Service": {"spec": {"ports": [{"port": 80}]}},
    "Job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}},
    "Binding": {"target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}},
    "TokenReview": {"spec": {"token": "any"}},
    "APIService": {"spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                            "versionPriority": 100, "service": {"name": "metrics-server", "namespace": NS}}},
    "PriorityClass": {"value": 1000},
    "RuntimeClass": {"handler": "runc"},
    "StorageClass": {"provisioner": "example.com/disk"},
    # events.k8s.io validates new Events strictly (a core Event needs nothing more)
    "events.k8s.io/v1 Event": {"eventTime": "2025-01-02T03:04:05.000000Z", "type": "Normal", "reason": "Tested",
                               "action": "Test", "reportingController": "example.com/tests", "reportingInstance": "t-1"},
}
for _workload in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
    BODIES[_workload] = {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
        "metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def test_every_built_in_kind_of_1_32_is_served_and_accepted(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    seen = set()
    ok(emu, "POST", f"/api/v1/namespaces/{NS}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "binding-x"},
                                                      **BODIES["Pod"]})
    for gv in sorted(GROUP_VERSIONS_1_32):
        listing = ok(emu, "GET", f"/api/{gv}" if gv == "v1" else f"/apis/{gv}")
        for resource in listing["resources"]:
            if "/" in resource["name"] or "create" not in resource["verbs"]:
                continue
            group, version = gv.rpartition("/")[::2]
            kind = resource["kind"]
            # group in the name: core and events.k8s.io Events are one resource (as on a real server)
            name = "binding-x" if kind == "Binding" else f"x-{resource['name']}-{version}-{group or 'core'}"
            body = {"apiVersion": gv, "kind": kind, "metadata": {"name": name}, **BODIES.get(f"{gv} {kind}", BODIES.get(kind, {}))}
            if kind == "CustomResourceDefinition":
                body = widget_crd()
                name = body["metadata"]["name"]
            where = (f"/api/{gv}" if not group else f"/apis/{gv}") + (f"/namespaces/{NS}" if resource["namespaced"] else "")
            created = ok(emu, "POST", f"{where}/{resource['name']}", body)
            if resource["verbs"] == ["create"]:
                assert created.get("status") or created.get("kind") == "Status", (kind, created)
                assert emu.request("GET", f"{where}/{resource['name']}")[0] == 405
            else:
                assert created["kind"] == kind and created["metadata"]["uid"]
                assert ok(emu, "GET", f"{where}/{resource['name']}/{name}")["metadata"]["name"] == name
            # the kind's schema is in the recorded OpenAPI document of its group-version
            assert builtin_openapi.kind_schema(group, version, kind), (gv, kind)
            seen.add((gv, kind))
    assert ("apiregistration.k8s.io/v1", "APIService") in seen
    assert len(seen) == 58  # every creatable kind of the 21 group-versions
    pod = ok(emu, "GET", f"/api/v1/namespaces/{NS}/pods/binding-x")
    assert pod["spec"]["nodeName"] == "node-1"
    review = ok(emu, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}}})
    assert review["status"]["allowed"] is True
    assert emu.request("DELETE", "/api/v1/namespaces")[0] == 405  # namespaces have no deletecollection


def test_a_kube_prometheus_style_tree_syncs_whole_and_stays_in_sync(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    from gitops import Reconciler
    from gitops.targets.kubernetes import KubernetesTarget

    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                  "insecureSkipTLSVerify": True, "service": {"name": "prometheus-adapter", "namespace": "monitoring"}}},
        {**deployment("prometheus-adapter", SENT), "metadata": {"name": "prometheus-adapter", "namespace": "monitoring"}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "adapter", "namespace": "monitoring"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "prometheus-adapter"}}}},
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "prometheus"},
         "spec": {"priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 1000}},
    ]
    source = tmp_path / "src"
    source.mkdir()
    for index, manifest in enumerate(manifests):
        (source / f"{index}.yaml").write_text(yaml.safe_dump(manifest))
    target = KubernetesTarget("k8s:", kubeconfig=str(kube_emulator.kubeconfig_path))
    try:
        with Reconciler(str(source), target, name="kube-prometheus") as rec:
            result = rec.sync()
            assert result.succeeded, [(r.change.key, r.message) for r in result.failed]
            assert rec.plan().in_sync
    finally:
        target.close()
    [service] = kube_emulator.objects(kind="APIService")
    assert service["spec"]["service"]["name"] == "prometheus-adapter"


# -- helpers -----------------------------------------------------------------------------------------


def fetch(emu: KubeEmulator, path: str) -> tuple[int, bytes]:
    import urllib.request

    with urllib.request.urlopen(emu.url + path, timeout=10) as response:
        return int(response.status), response.read()


def kubectl(emu: KubeEmulator, tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None and emu.kubeconfig_path is not None
    cmd = [KUBECTL, "--kubeconfig", str(emu.kubeconfig_path), "--cache-dir", str(tmp_path / "cache"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
                          check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done
