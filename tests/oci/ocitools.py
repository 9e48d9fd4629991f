"""Helpers for the OCI tests: hostile layers, raw uploads, OCI layouts for skopeo, trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.manifest import Descriptor, build_manifest
from gitops.sources.oci.options import FLUX_CONFIG, FLUX_CONTENT, OCI_MANIFEST, load_options
from gitops.sources.oci.reference import parse_oci_url


def require(binary: str | None, name: str) -> str:
    """The binary's path; skip (locally) or fail (CI=true) when it is missing."""
    if binary:
        return binary
    message = f"{name} is not installed (apt-get install docker-registry skopeo)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the OCI tests (.ci/run installs it)")
    pytest.skip(message)


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]], *, gzip_level: int = 6) -> bytes:
    """A tar+gzip of ``entries``: ``(name, content)`` files or prepared TarInfos."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                name, content = entry
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=gzip_level, mtime=0)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(url: str, layer: bytes, *, media_type: str = FLUX_CONTENT,
           annotations: dict[str, str] | None = None, **options: object) -> str:
    """Push ``layer`` as-is (however hostile) under ``url``'s tag; returns the manifest digest."""
    ref, _, _ = parse_oci_url(url)
    settings = load_options(ref.display, options)
    client = RegistryClient(ref, settings, display=ref.display, credentials=lambda: None,
                            push=True)
    try:
        client.upload_blob(sha256(b"{}"), 2, b"{}")
        client.upload_blob(sha256(layer), len(layer), layer)
        manifest = build_manifest(
            Descriptor(FLUX_CONFIG, sha256(b"{}"), 2),
            [Descriptor(media_type, sha256(layer), len(layer))],
            annotations or {},
        )
        return client.put_manifest(ref.tag or "latest", manifest, OCI_MANIFEST)
    finally:
        client.close()


def oci_layout(directory: Path, tag: str, layer: bytes, *, media_type: str = FLUX_CONTENT,
               config_media_type: str = FLUX_CONFIG,
               annotations: dict[str, str] | None = None) -> str:
    """Write an OCI image layout holding one artifact (for skopeo); returns its manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def blob(data: bytes) -> Descriptor:
        digest = sha256(data)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return Descriptor("", digest, len(data))

    config, content = blob(b"{}"), blob(layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_media_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": media_type, "digest": content.digest, "size": content.size}],
        "annotations": annotations or {},
    }).encode()
    described = blob(manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": described.digest,
                       "size": described.size,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    return described.digest


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative POSIX path (links resolved)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root

