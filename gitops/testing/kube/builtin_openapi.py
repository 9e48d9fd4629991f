"""The OpenAPI v3 documents of Kubernetes 1.32's built-in API groups, recorded from upstream.

``data/openapi/kubernetes-1.32-openapi-v3.tar.xz`` holds, byte for byte, the documents a
1.32 ``kube-apiserver`` serves at ``/openapi/v3/api/v1`` and ``/openapi/v3/apis/GROUP/VERSION``
(``api/openapi-spec/v3`` in kubernetes/kubernetes; see ``data/PROVENANCE.md``). The
emulator serves them as they are and reads the schemas for what the real server derives
from its Go types: which fields hold a ``resource.Quantity`` (stored canonically) and
which top-level fields a kind has. The archive is read once per process, on first use,
and nothing here ever changes it (parsed documents are shared: treat them as read-only).
"""

from __future__ import annotations

import functools
import io
import json
import lzma
import tarfile
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

__all__ = [
    "KUBERNETES_VERSION",
    "MICROTIME",
    "QUANTITY",
    "Path",
    "document",
    "group_versions",
    "kind_schema",
    "microtime_paths",
    "quantity_paths",
    "raw_document",
    "schema",
    "top_level_fields",
]

#: the Kubernetes release the recorded documents come from
KUBERNETES_VERSION = "1.32"
#: the schema every quantity field refers to
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
#: the schema of microsecond timestamps (``2006-01-02T15:04:05.000000Z07:00``)
MICROTIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
_ARCHIVE = "kubernetes-1.32-openapi-v3.tar.xz"
_REF_PREFIX = "#/components/schemas/"

#: a field path from the object root: property names, ``[]`` for every list item,
#: ``*`` for every value of a map
Path = tuple[str, ...]

_lock = threading.Lock()


def _key(member: str) -> str:
    """``apis__apps__v1_openapi.json`` -> ``apis/apps/v1`` (the document's URL below /openapi/v3)."""
    return member.removesuffix("_openapi.json").replace("__", "/")


@functools.cache
def _archive() -> dict[str, bytes]:
    with _lock:
        data = (resources.files("gitops.testing.kube") / "data" / "openapi" / _ARCHIVE).read_bytes()
        out: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data)), mode="r:") as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if handle is not None:
                    out[_key(member.name)] = handle.read()
        return out


def gv_key(group: str, version: str) -> str:
    """``api/v1`` or ``apis/apps/v1``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def group_versions() -> list[tuple[str, str]]:
    """Every recorded (group, version); the core group is ``""``."""
    out = []
    for key in _archive():
        parts = key.split("/")
        out.append(("", parts[1]) if parts[0] == "api" else (parts[1], parts[2]))
    return sorted(out)


def raw_document(group: str, version: str) -> bytes | None:
    """The recorded document of a group-version, exactly as upstream publishes it, or None."""
    return _archive().get(gv_key(group, version))


@functools.cache
def document(group: str, version: str) -> dict[str, Any] | None:
    """The parsed document of a group-version (shared: do not modify), or None."""
    raw = raw_document(group, version)
    if raw is None:
        return None
    doc: dict[str, Any] = json.loads(raw)
    return doc


def schema(group: str, version: str, name: str) -> dict[str, Any] | None:
    """A component schema of a group-version's document by name, or None."""
    doc = document(group, version)
    found = (doc or {}).get("components", {}).get("schemas", {}).get(name)
    return found if isinstance(found, dict) else None


@functools.cache
def kind_schema(group: str, version: str, kind: str) -> str | None:
    """The name of the schema of ``kind`` (tagged with its ``x-kubernetes-group-version-kind``)."""
    doc = document(group, version)
    if doc is None:
        return None
    wanted = {"group": group, "version": version, "kind": kind}
    for name, body in doc.get("components", {}).get("schemas", {}).items():
        gvks = body.get("x-kubernetes-group-version-kind") or []
        if len(gvks) == 1 and gvks[0] == wanted:
            return str(name)
    return None


def _resolve(node: dict[str, Any]) -> str | None:
    """The schema a node refers to (``$ref`` directly or as the single ``allOf``)."""
    ref = node.get("$ref")
    if ref is None and isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        ref = node["allOf"][0].get("$ref")
    return ref.removeprefix(_REF_PREFIX) if isinstance(ref, str) else None


def _walk(schemas: dict[str, Any], node: dict[str, Any], path: Path, seen: frozenset[str], target: str) -> Iterator[Path]:
    name = _resolve(node)
    if name == target:
        yield path
        return
    if name is not None:
        if name in seen or not isinstance(schemas.get(name), dict):
            return
        seen = seen | {name}
        yield from _walk(schemas, schemas[name], path, seen, target)
    for field, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            yield from _walk(schemas, sub, (*path, field), seen, target)
    if isinstance(node.get("items"), dict):
        yield from _walk(schemas, node["items"], (*path, "[]"), seen, target)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(schemas, node["additionalProperties"], (*path, "*"), seen, target)


def _paths_to(group: str, version: str, kind: str, target: str) -> tuple[Path, ...]:
    name = kind_schema(group, version, kind)
    doc = document(group, version)
    if name is None or doc is None:
        return ()
    schemas = doc["components"]["schemas"]
    return tuple(_walk(schemas, schemas[name], (), frozenset({name}), target))


@functools.cache
def quantity_paths(group: str, version: str, kind: str) -> tuple[Path, ...]:
    """Every path of ``kind`` whose value is a ``resource.Quantity`` (empty for unknown kinds).

    E.g. ``("spec", "template", "spec", "containers", "[]", "resources", "limits", "*")``.
    """
    return _paths_to(group, version, kind, QUANTITY)


@functools.cache
def microtime_paths(group: str, version: str, kind: str) -> tuple[Path, ...]:
    """Every path of ``kind`` whose value is a ``metav1.MicroTime`` (a Lease's ``spec.renewTime``,
    an Event's ``eventTime``), not counting ``metadata`` (empty for unknown kinds)."""
    return tuple(p for p in _paths_to(group, version, kind, MICROTIME) if p[:1] != ("metadata",))


@functools.cache
def top_level_fields(group: str, version: str, kind: str) -> frozenset[str] | None:
    """The top-level properties of ``kind`` (``apiVersion``, ``kind``, ``metadata``, ...), or None."""
    name = kind_schema(group, version, kind)
    if name is None:
        return None
    found = schema(group, version, name) or {}
    return frozenset(found.get("properties") or ())
