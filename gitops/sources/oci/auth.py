"""Registry credentials and ``WWW-Authenticate`` challenges.

Credentials are looked up in this order, first match wins: the ``username``/``password``
options, the URL's userinfo, ``GITOPS_OCI_USERNAME``/``GITOPS_OCI_PASSWORD``, then a
Docker ``config.json`` (``auths`` entries, ``credHelpers`` and ``credsStore`` helpers).
Secrets live only in :class:`Credentials`, whose repr hides them; this module never
logs a secret, never puts one in an exception and never sends anything over the
network (the client does, see :mod:`gitops.sources.oci.client`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.errors import SourceAuthenticationError
from gitops.sources.oci.options import OCIOptions

__all__ = ["Challenge", "Credentials", "docker_config_path", "find_credentials", "parse_challenge"]

log = logging.getLogger("gitops.sources.oci")

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_HELPER_TIMEOUT = 15.0
_DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A username with a password or an identity (refresh) token; secrets never shown."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    origin: str = ""  # where they came from, for messages: "options", "docker config ..."

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for redacting text that might echo one."""
        return tuple(s for s in (self.password, self.identity_token) if s)

    def basic(self) -> str:
        """The ``Authorization`` header value for HTTP Basic."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``basic`` or ``bearer`` and its parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header (None if absent or unknown)."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        params[match.group(1).lower()] = value
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    return Challenge(scheme, params)


def find_credentials(
    registry: str,
    options: OCIOptions,
    url_username: str | None,
    url_password: str | None,
    *,
    display: str,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """The credentials for ``registry`` (``host[:port]``), or None for anonymous access.

    Raises :class:`~gitops.errors.AuthenticationError` naming ``display`` (a
    credential-free URL) when an explicitly given Docker config cannot be read or a
    credential helper fails.
    """
    env = os.environ if environ is None else environ
    password = options.password.get_secret_value() if options.password else None
    if options.username is not None or password is not None:
        return Credentials(options.username or "", password or "", origin="options")
    if url_username is not None or url_password is not None:
        return Credentials(url_username or "", url_password or "", origin="the URL")
    if env.get("GITOPS_OCI_USERNAME") or env.get("GITOPS_OCI_PASSWORD"):
        return Credentials(
            env.get("GITOPS_OCI_USERNAME", ""),
            env.get("GITOPS_OCI_PASSWORD", ""),
            origin="GITOPS_OCI_USERNAME/GITOPS_OCI_PASSWORD",
        )
    path = docker_config_path(options.docker_config, env)
    if path is None:
        return None
    config = _read_docker_config(path, explicit=options.docker_config is not None, display=display)
    return _from_docker_config(config, registry, path, display)


def docker_config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """Docker's config.json: the option (a file or a directory), ``$DOCKER_CONFIG``, ``~/.docker``."""
    if explicit is not None:
        return explicit / "config.json" if explicit.is_dir() else explicit
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    home = environ.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".docker" / "config.json"


def _read_docker_config(path: Path, *, explicit: bool, display: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as exc:
        if explicit:
            raise SourceAuthenticationError(display, f"docker config {path} does not exist") from exc
        return {}
    except (OSError, ValueError) as exc:
        # The file holds secrets: name it, never quote it.
        raise SourceAuthenticationError(
            display, f"cannot read docker config {path}: {type(exc).__name__}"
        ) from None
    if not isinstance(data, dict):
        raise SourceAuthenticationError(display, f"docker config {path} is not a JSON object")
    return data


def _normalize(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io``; ``host:port`` unchanged."""
    key = key.strip().lower()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def _same_registry(key: str, registry: str) -> bool:
    key, registry = _normalize(key), registry.lower()
    if key in _DOCKER_HUB_KEYS and registry in _DOCKER_HUB_KEYS:
        return True
    return key == registry


def _from_docker_config(
    config: Mapping[str, Any], registry: str, path: Path, display: str
) -> Credentials | None:
    origin = f"docker config {path}"
    helpers = config.get("credHelpers")
    if isinstance(helpers, Mapping):
        for key, helper in helpers.items():
            if isinstance(helper, str) and _same_registry(key, registry):
                return _run_helper(helper, key, display)
    auths = config.get("auths")
    if isinstance(auths, Mapping):
        for key, entry in auths.items():
            if isinstance(entry, Mapping) and _same_registry(key, registry):
                found = _from_auth_entry(entry, origin, display)
                if found is not None:
                    return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        server = "https://index.docker.io/v1/" if registry in _DOCKER_HUB_KEYS else registry
        return _run_helper(store, server, display)
    return None


def _from_auth_entry(entry: Mapping[str, Any], origin: str, display: str) -> Credentials | None:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    token = str(entry.get("identitytoken") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise SourceAuthenticationError(display, f"{origin}: invalid 'auth' entry") from None
        if not sep:
            raise SourceAuthenticationError(display, f"{origin}: 'auth' entry is not base64(user:password)")
    if not (username or password or token):
        return None
    return Credentials(username, password, token, origin)


def _run_helper(helper: str, server: str, display: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` for ``server``'s credentials."""
    program = f"docker-credential-{helper}"
    executable = shutil.which(program)
    if executable is None:
        log.warning("%s: credential helper %s is not installed; trying anonymous access",
                    display, program)
        return None
    try:
        done = subprocess.run(
            [executable, "get"], input=server.encode(), capture_output=True,
            timeout=_HELPER_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceAuthenticationError(
            display, f"credential helper {program} failed: {type(exc).__name__}"
        ) from None
    if done.returncode != 0:
        # "credentials not found" is the helpers' way to say: no entry for this server.
        log.info("%s: credential helper %s has no credentials for %s", display, program, server)
        return None
    try:
        data = json.loads(done.stdout)
        username, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise SourceAuthenticationError(
            display, f"credential helper {program} returned an unreadable answer"
        ) from None
    origin = f"credential helper {program}"
    if username == "<token>":  # Docker's convention for identity tokens
        return Credentials("", "", secret, origin)
    return Credentials(username, secret, "", origin)
