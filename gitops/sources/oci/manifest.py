"""OCI and Docker image manifests: parse, select the content layer, build one to push.

A manifest is checked against its digest by the client before it reaches this module;
here it is only parsed and validated (OCI ``image.manifest.v1`` and Docker
``distribution.manifest.v2``; an index or manifest list is refused with a clear message,
since an artifact is one manifest). Pure functions: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops.errors import SourceError
from gitops.sources.oci.options import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from gitops.sources.oci.reference import DIGEST_RE

__all__ = ["Descriptor", "ManifestInfo", "build_manifest", "parse_manifest", "select_layer"]

_INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                                "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """The parts of a manifest a source needs."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]


def parse_manifest(display: str, content: bytes, content_type: str = "") -> ManifestInfo:
    """Parse a manifest; raises :class:`~gitops.errors.SourceError` naming ``display``."""
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise SourceError(display, f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceError(display, "manifest is not a JSON object")
    media_type = str(data.get("mediaType") or content_type.split(";")[0].strip() or OCI_MANIFEST)
    if media_type in _INDEXES or "manifests" in data:
        raise SourceError(
            display,
            f"{media_type} is an index of several manifests, not an artifact; "
            "pin one manifest with @sha256:<digest>",
        )
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise SourceError(display, f"unsupported manifest media type {media_type!r}")
    if data.get("schemaVersion") != 2:
        raise SourceError(display, f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")
    config = _descriptor(display, data.get("config"), "config")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise SourceError(display, "manifest has no 'layers' list")
    return ManifestInfo(
        media_type,
        config,
        tuple(_descriptor(display, item, f"layers[{i}]") for i, item in enumerate(layers)),
        _annotations(data.get("annotations")),
    )


def select_layer(display: str, info: ManifestInfo, media_type: str) -> Descriptor:
    """The one layer of ``media_type``; SourceError listing what there is otherwise."""
    matches = [layer for layer in info.layers if layer.media_type == media_type]
    if len(matches) == 1:
        return matches[0]
    found = sorted({layer.media_type for layer in info.layers}) or ["no layers"]
    if not matches:
        raise SourceError(
            display,
            f"manifest has no layer of media type {media_type!r} (it has: {', '.join(found)}); "
            "choose one with the layer_media_type option",
        )
    raise SourceError(display, f"manifest has {len(matches)} layers of media type {media_type!r}")


def build_manifest(
    config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]
) -> bytes:
    """The canonical bytes of an OCI image manifest (sorted keys, no whitespace)."""
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": [layer.to_dict() for layer in layers],
    }
    if annotations:
        data["annotations"] = dict(sorted(annotations.items()))
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _descriptor(display: str, value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise SourceError(display, f"manifest {where} is not a descriptor")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise SourceError(display, f"manifest {where} has no mediaType")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise SourceError(display, f"manifest {where} has an unsupported digest {digest!r} "
                                   "(expected sha256:<64 hex>)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise SourceError(display, f"manifest {where} has an invalid size {size!r}")
    return Descriptor(media_type, digest, size, _annotations(value.get("annotations")))


def _annotations(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}
