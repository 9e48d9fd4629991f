"""Publish a directory as a Flux-compatible OCI artifact, reproducibly.

The artifact is what ``flux push artifact`` makes: an OCI image manifest whose config
has media type ``application/vnd.cncf.flux.config.v1+json`` and whose one layer is a
``application/vnd.cncf.flux.content.v1.tar+gzip`` of the directory, with the
``org.opencontainers.image.created``/``.source``/``.revision`` annotations.

The layer is reproducible: the files the directory source would read
(:func:`gitops.tree.walk`: hidden and ``.sourceignore``'d files left out, in sorted
order), with fixed mtimes, owners and modes and a gzip header without time or name, so
the same directory always gives the same layer digest. Pin ``created`` (or set
``SOURCE_DATE_EPOCH``) and the manifest digest is reproducible too. This module never
modifies the directory and never reads outside it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import stat
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gitops.errors import InputError, InvalidURLError
from gitops.sources.oci.auth import find_credentials
from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.manifest import Descriptor, build_manifest
from gitops.sources.oci.options import FLUX_CONFIG, OCI_MANIFEST, load_options
from gitops.sources.oci.reference import parse_oci_url
from gitops.tree import walk

__all__ = ["PushResult", "build_layer", "push"]

log = logging.getLogger("gitops.sources.oci")

CREATED = "org.opencontainers.image.created"
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
_CONFIG = b"{}"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PushResult:
    """What :func:`push` published. ``revision`` is what the OCI source will report."""

    url: str
    tag: str
    digest: str
    layer_digest: str
    size: int

    @property
    def revision(self) -> str:
        return f"{self.tag}@{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "revision": self.revision, "digest": self.digest,
                "layer_digest": self.layer_digest, "size": self.size}


class _HashingWriter:
    """Counts and hashes what passes through to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def build_layer(directory: str | os.PathLike[str], out: IO[bytes]) -> Descriptor:
    """Write the reproducible tar+gzip of ``directory`` to ``out``; return its descriptor.

    The descriptor's media type is the Flux content type. Raises
    :class:`~gitops.errors.InputError` when ``directory`` is not a directory and
    :class:`~gitops.errors.ManifestError` for a manifest-named symlink leading outside it.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    writer = _HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=writer,
                       compresslevel=6, mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        written_dirs: set[str] = set()
        for item in walk(root):
            parts = item.relpath.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in written_dirs:
                    written_dirs.add(parent)
                    archive.addfile(_info(parent, tarfile.DIRTYPE, 0, 0o755))
            st = os.stat(item.path)
            mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            with open(item.path, "rb") as handle:
                archive.addfile(_info(item.relpath, tarfile.REGTYPE, st.st_size, mode), handle)
    return Descriptor("", "sha256:" + writer.hash.hexdigest(), writer.size)


def _info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _created(created: datetime | str | None) -> str:
    if isinstance(created, str):
        return created
    if created is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        created = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() \
            else datetime.now(UTC)
    return created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def push(
    directory: str | os.PathLike[str],
    url: str,
    *,
    annotations: Mapping[str, str] | None = None,
    revision: str | None = None,
    source: str | None = None,
    created: datetime | str | None = None,
    **options: Any,
) -> PushResult:
    """Push ``directory`` to ``url`` (``oci://HOST[:PORT]/REPO:TAG``) as a Flux artifact.

    ``revision`` and ``source`` become the ``org.opencontainers.image.revision`` and
    ``.source`` annotations; ``created`` (default: ``SOURCE_DATE_EPOCH``, else now) the
    ``.created`` one; ``annotations`` adds more. ``options`` are the OCI source's
    (credentials, TLS, ``layer_media_type``, ``timeout``; see docs/oci.md). Raises
    InvalidURLError, InputError, AuthenticationError or SourceError, never leaking a
    credential.
    """
    ref, username, password = parse_oci_url(url)
    display = ref.display
    if ref.digest or ref.semver is not None or str(ref.path) != ".":
        raise InvalidURLError(display, "push needs oci://HOST[:PORT]/REPO:TAG (no digest, "
                                       "semver or path)")
    tag = ref.tag or "latest"
    settings = load_options(display, options)
    notes = {CREATED: _created(created), **dict(annotations or {})}
    if source is not None:
        notes[SOURCE] = source
    if revision is not None:
        notes[REVISION] = revision
    client = RegistryClient(
        ref, settings, display=display, push=True,
        credentials=lambda: find_credentials(ref.registry, settings, username, password,
                                             display=display),
    )
    try:
        with tempfile.TemporaryFile(prefix="gitops-push-") as tmp:
            built = build_layer(directory, tmp)
            layer = Descriptor(settings.layer_media_type, built.digest, built.size)
            config = Descriptor(FLUX_CONFIG, "sha256:" + hashlib.sha256(_CONFIG).hexdigest(),
                                len(_CONFIG))
            client.upload_blob(config.digest, config.size, _CONFIG)
            tmp.seek(0)
            client.upload_blob(layer.digest, layer.size, tmp)
        digest = client.put_manifest(tag, build_manifest(config, [layer], notes), OCI_MANIFEST)
    finally:
        client.close()
    log.info("%s: pushed %s (layer %s, %d bytes)", display, digest, layer.digest, layer.size)
    return PushResult(display, tag, digest, layer.digest, layer.size)
