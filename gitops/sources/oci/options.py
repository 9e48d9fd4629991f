"""Options of the OCI source and push, validated once, with their environment defaults.

Options come from ``gitops.open_source(url, **options)`` (or ``push(..., **options)``)
and, where not given, from the environment: ``GITOPS_OCI_USERNAME``,
``GITOPS_OCI_PASSWORD``, ``GITOPS_OCI_CA_BUNDLE``, ``GITOPS_OCI_INSECURE`` and Docker's
``DOCKER_CONFIG``. The password is a ``SecretStr``: it never appears in a repr, an
error or a log line. This module reads the environment and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gitops.errors import InputError

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "FLUX_CONFIG",
    "FLUX_CONTENT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "OCIOptions",
    "load_options",
]

#: Flux's media types (``flux push artifact``, OCIRepository).
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

_MIB = 1 << 20
_TRUE = ("1", "true", "yes", "on")


class OCIOptions(BaseModel):
    """What the OCI source and push accept as options (see docs/oci.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str | None = None
    password: SecretStr | None = None
    docker_config: Path | None = Field(
        default=None, description="a Docker config.json, or the directory holding it"
    )
    ca_bundle: Path | None = Field(default=None, description="PEM file of CAs to trust")
    insecure: bool = Field(default=False, description="HTTPS without certificate verification")
    plain_http: bool | None = Field(
        default=None, description="force HTTP (True) or HTTPS (False); None: HTTP for loopback"
    )
    layer_media_type: str = FLUX_CONTENT
    max_size: int = Field(default=256 * _MIB, gt=0, description="compressed layer bytes")
    max_extracted_size: int = Field(
        default=1024 * _MIB, gt=0, description="bytes of the uncompressed tar stream"
    )
    max_files: int = Field(default=100_000, gt=0)
    timeout: float = Field(default=30.0, gt=0, description="seconds to connect or read")
    cache_dir: Path | None = None


def load_options(
    url: str, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> OCIOptions:
    """Validate ``options``, filling ``ca_bundle`` and ``insecure`` from the environment.

    Credentials from the environment are looked up later, in their order of precedence
    (:func:`gitops.sources.oci.auth.find_credentials`).

    Raises :class:`~gitops.errors.InputError` naming ``url`` (credential-free) and the
    offending option; the error never repeats an option's value.
    """
    env = os.environ if environ is None else environ
    merged = dict(options)
    if merged.get("ca_bundle") is None and env.get("GITOPS_OCI_CA_BUNDLE"):
        merged["ca_bundle"] = env["GITOPS_OCI_CA_BUNDLE"]
    if "insecure" not in merged and env.get("GITOPS_OCI_INSECURE", "").lower() in _TRUE:
        merged["insecure"] = True
    try:
        return OCIOptions(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        # Not chained: pydantic's own message repeats input values, passwords included.
        raise InputError(f"{url}: invalid OCI options: {problems}") from None
