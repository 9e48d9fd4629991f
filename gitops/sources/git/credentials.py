"""Credentials and trust settings of one Git remote, from options, the URL and the environment.

Precedence: an explicit option, then the URL's userinfo, then ``GITOPS_GIT_*``
environment variables (see ``docs/git.md``). Insecure switches (ignoring host keys or
TLS verification) are options only, never environment variables. Secrets live here and
in the transport objects built from them, nowhere else: this module never logs, and
:meth:`Credentials.secrets` lists every value errors must be scrubbed of.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import InputError
from gitops.sources.git.url import GitURL

__all__ = ["ENV", "Credentials", "resolve_credentials"]

#: Environment variables read when the matching option is not given.
ENV = {
    "username": "GITOPS_GIT_USERNAME",
    "password": "GITOPS_GIT_PASSWORD",
    "bearer_token": "GITOPS_GIT_BEARER_TOKEN",
    "ssh_key": "GITOPS_GIT_SSH_KEY",
    "ssh_key_passphrase": "GITOPS_GIT_SSH_KEY_PASSPHRASE",
    "known_hosts": "GITOPS_GIT_KNOWN_HOSTS",
    "ca_bundle": "GITOPS_GIT_CA_BUNDLE",
}

_PEM_PREFIX = "-----BEGIN "


@dataclass(frozen=True)
class Credentials:
    """Everything needed to authenticate to a remote and to authenticate the remote."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    #: a path to a private key file, or the key itself (PEM/OpenSSH text)
    ssh_key: str | None = field(default=None, repr=False)
    ssh_key_passphrase: str | None = field(default=None, repr=False)
    known_hosts: Path | None = None
    insecure_ignore_host_key: bool = False
    ca_bundle: Path | None = None
    insecure_skip_tls_verify: bool = False

    @property
    def ssh_key_is_inline(self) -> bool:
        """True when ``ssh_key`` holds the key text rather than a path."""
        return self.ssh_key is not None and self.ssh_key.lstrip().startswith(_PEM_PREFIX)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for :func:`gitops.urls.redact`."""
        values = [self.password, self.bearer_token, self.ssh_key_passphrase]
        if self.ssh_key_is_inline:
            values.append(self.ssh_key)
        return tuple(v for v in values if v)

    def for_other_origin(self) -> Credentials:
        """The trust settings without any credential (for a submodule on another host)."""
        return Credentials(
            known_hosts=self.known_hosts,
            insecure_ignore_host_key=self.insecure_ignore_host_key,
            ca_bundle=self.ca_bundle,
            insecure_skip_tls_verify=self.insecure_skip_tls_verify,
        )


def resolve_credentials(
    url: GitURL,
    *,
    username: str | None = None,
    password: str | None = None,
    bearer_token: str | None = None,
    ssh_key: str | os.PathLike[str] | None = None,
    ssh_key_passphrase: str | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    insecure_ignore_host_key: bool = False,
    ca_bundle: str | os.PathLike[str] | None = None,
    insecure_skip_tls_verify: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Merge options, URL userinfo and environment; raises InputError for unusable values."""
    env = os.environ if environ is None else environ

    def pick(option: str | None, from_url: str | None, name: str) -> str | None:
        if option is not None:
            return option
        if from_url is not None:
            return from_url
        return env.get(ENV[name]) or None

    key = pick(os.fspath(ssh_key) if ssh_key is not None else None, None, "ssh_key")
    hosts = pick(os.fspath(known_hosts) if known_hosts is not None else None, None,
                 "known_hosts")
    bundle = pick(os.fspath(ca_bundle) if ca_bundle is not None else None, None, "ca_bundle")
    creds = Credentials(
        username=pick(username, url.username, "username"),
        password=pick(password, url.password, "password"),
        bearer_token=pick(bearer_token, None, "bearer_token"),
        ssh_key=key,
        ssh_key_passphrase=pick(ssh_key_passphrase, None, "ssh_key_passphrase"),
        known_hosts=Path(hosts).expanduser() if hosts else None,
        insecure_ignore_host_key=bool(insecure_ignore_host_key),
        ca_bundle=Path(bundle).expanduser() if bundle else None,
        insecure_skip_tls_verify=bool(insecure_skip_tls_verify),
    )
    _check(url, creds)
    return creds


def _check(url: GitURL, creds: Credentials) -> None:
    """Files must exist, for the transport that uses them (a stray variable is harmless)."""
    where = url.display
    if url.transport == "ssh":
        key = creds.ssh_key
        if key and not creds.ssh_key_is_inline and not Path(key).expanduser().is_file():
            raise InputError(f"{where}: SSH key file {key} does not exist")
        if creds.known_hosts is not None and not creds.known_hosts.is_file():
            raise InputError(f"{where}: known_hosts file {creds.known_hosts} does not exist")
    bundle = creds.ca_bundle
    if url.transport == "https" and bundle is not None and not bundle.is_file():
        raise InputError(f"{where}: CA bundle {bundle} does not exist")
    if creds.password and creds.bearer_token:
        raise InputError(f"{where}: give a password or a bearer token, not both")
