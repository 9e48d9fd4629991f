"""Options of the OCI source and push, validated once, with their environment defaults.

Options come from ``gitops.open_source(url, **options)``, the URL's ``#fragment``
(``#path=prod&layer-media-type=...``; the source's :class:`OCISourceOptions`) or
``push(..., **options)`` (:class:`OCIOptions`) and, where not given, from the
environment: ``GITOPS_OCI_USERNAME``, ``GITOPS_OCI_PASSWORD``, ``GITOPS_OCI_CA_BUNDLE``,
``GITOPS_OCI_INSECURE`` and Docker's ``DOCKER_CONFIG``. The password is a ``SecretStr``:
it never appears in a repr, an error or a log line, and never comes from a URL fragment
(:data:`SECRET`). This module reads the environment and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, field_validator

from gitops.options import PluginOptions, validate_options
from gitops.sources.fragment import subpath

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "FLUX_CONFIG",
    "FLUX_CONTENT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SECRET",
    "OCIOptions",
    "OCISourceOptions",
    "load_options",
    "with_environment",
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
#: The cache bounds the Git source has too: 2 GiB, 14 days.
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_AGE = 14 * 24 * 3600.0
#: Options that hold secrets: keyword arguments or the environment only, never a URL.
SECRET = frozenset({"password"})


class OCIOptions(PluginOptions):
    """What the OCI source and push accept as options (see docs/oci.md)."""

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


class OCISourceOptions(OCIOptions):
    """The OCI source's options: the transport's, plus what to select and the cache bounds."""

    path: str = Field(default="", description="the folder to render within the artifact")
    semver: str | None = Field(default=None, description="the highest tag in this range")
    cache_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0)
    cache_max_age: float = Field(default=DEFAULT_MAX_AGE, ge=0)

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        return subpath(value)


OptionsT = TypeVar("OptionsT", bound=OCIOptions)


def with_environment(options: OptionsT, environ: Mapping[str, str] | None = None) -> OptionsT:
    """``options`` with ``ca_bundle`` and ``insecure`` filled from the environment where
    the caller did not give them (``GITOPS_OCI_CA_BUNDLE``, ``GITOPS_OCI_INSECURE``).

    Credentials from the environment are looked up later, in their order of precedence
    (:func:`gitops.sources.oci.auth.find_credentials`).
    """
    env = os.environ if environ is None else environ
    updates: dict[str, Any] = {}
    if options.ca_bundle is None and env.get("GITOPS_OCI_CA_BUNDLE"):
        updates["ca_bundle"] = Path(env["GITOPS_OCI_CA_BUNDLE"])
    if "insecure" not in options.model_fields_set \
            and env.get("GITOPS_OCI_INSECURE", "").lower() in _TRUE:
        updates["insecure"] = True
    return options.model_copy(update=updates) if updates else options


def load_options(
    url: str, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> OCIOptions:
    """Validate ``options`` (push's), then fill environment defaults (:func:`with_environment`).

    Raises :class:`~gitops.errors.InvalidURLError` (an InputError) naming ``url``
    (credential-free) and the offending option; never repeating an option's value.
    """
    return with_environment(validate_options(OCIOptions, url, options), environ)
