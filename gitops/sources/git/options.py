"""The Git source's one options model: URL fragment and keyword arguments alike.

``GitSource(url, **options)``, ``gitops.open_source(url, **options)`` and the URL's
``#path=...&semver=...&recurse-submodules=true`` all fill :class:`GitOptions`, validated
once (keywords win over the URL). Secrets are ``SecretStr``: never in a repr or an
error, and never accepted from the URL (:data:`SECRET`). Environment defaults for
credentials and verification are applied later, by the source (see ``docs/git.md``).
Pure: no I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from gitops.errors import InputError
from gitops.options import PluginOptions
from gitops.sources.fragment import subpath
from gitops.sources.git.bounds import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES
from gitops.sources.git.verify import VerifyMode, parse_mode

__all__ = ["SECRET", "GitOptions"]

#: Options that hold secrets: keyword arguments or the environment only, never the URL.
SECRET = frozenset({"password", "bearer_token", "ssh_key", "ssh_key_passphrase"})


def _text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class GitOptions(PluginOptions):
    """Everything a Git source can be told; see the table in ``docs/git.md``."""

    path: str = Field(default="", description="the folder to render within the repository")
    semver: str | None = Field(default=None, description="the highest tag in this range")
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    ssh_key: SecretStr | None = Field(
        default=None, description="a private key file, or the key text itself")
    ssh_key_passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    insecure_ignore_host_key: bool = False
    ca_bundle: Path | None = None
    insecure_skip_tls_verify: bool = False
    verify: VerifyMode | None = Field(default=None, description="head, tag or tag_and_head")
    public_keys: tuple[str, ...] = Field(
        default=(), description="trusted OpenPGP keys: armored text or file paths")
    recurse_submodules: bool = False
    timeout: float = Field(default=30.0, gt=0, description="seconds any network wait may take")
    cache_dir: Path | None = None
    cache_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0)
    cache_max_age: float = Field(default=DEFAULT_MAX_AGE, ge=0)
    protocol_version: int | None = Field(
        default=None, description="force Git protocol 0, 1 or 2 (default: negotiate)")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        return subpath(value)

    @field_validator("semver")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("semver range is empty")
        return value

    @field_validator("ssh_key", "known_hosts", "ca_bundle", "cache_dir", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("verify", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value is None or isinstance(value, VerifyMode) or not isinstance(value, str):
            return value
        try:
            return parse_mode("", value)
        except InputError:
            raise ValueError("unknown verify mode; expected head, tag or tag_and_head") from None

    @field_validator("public_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            return (_text(value),)
        if isinstance(value, list | tuple):
            return tuple(_text(v) for v in value)
        return value

    @field_validator("protocol_version")
    @classmethod
    def _version(cls, value: int | None) -> int | None:
        if value not in (None, 0, 1, 2):
            raise ValueError("must be 0, 1 or 2")
        return value

    def secret(self, name: str) -> str | None:
        """The plain value of a secret option (for the transport only), or None."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None
