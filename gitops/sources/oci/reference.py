"""Parse ``oci://`` URLs into registry references.

``oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST][#path=SUBDIR&semver=RANGE]``, with
optional ``user:password@`` userinfo (taken out here, never kept in a display URL).
Loopback hosts (127.0.0.0/8, ``localhost``, ``::1``) speak plain HTTP, as container
tools do; every other host speaks HTTPS. Pure functions: no I/O, and nothing here may
ever put a credential into :attr:`OCIReference.display`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from gitops.errors import InvalidURLError
from gitops.urls import (
    parse_fragment,
    safe_subpath,
    scrub,
    split_authority,
    userinfo_credentials,
)
from gitops.versions import parse_range

__all__ = ["DIGEST_RE", "OCIReference", "is_loopback", "parse_oci_url"]

#: A sha256 content digest as registries write it.
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# The distribution spec's grammar for repository names and tags.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
_ROOT = PurePosixPath(".")
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and loopback IP addresses."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class OCIReference:
    """One artifact in a registry, as an ``oci://`` URL names it (credentials apart)."""

    host: str  # hostname or IP, IPv6 without brackets
    port: int | None
    repository: str
    tag: str | None = None
    digest: str | None = None
    path: PurePosixPath = _ROOT
    semver: str | None = None

    @property
    def registry(self) -> str:
        """``host[:port]`` as written in image references and Docker's config.json."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def api_registry(self) -> str:
        """Where the registry API lives (Docker Hub's API host differs from its name)."""
        return "registry-1.docker.io" if self.host in _DOCKER_HUB and not self.port else self.registry

    @property
    def api_repository(self) -> str:
        """The repository name the API expects (Docker Hub's ``library/`` for official images)."""
        if self.host in _DOCKER_HUB and "/" not in self.repository:
            return f"library/{self.repository}"
        return self.repository

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def display(self) -> str:
        """The credential-free URL shown in errors, logs and results."""
        ref = f"oci://{self.registry}/{self.repository}"
        if self.tag:
            ref += f":{self.tag}"
        if self.digest:
            ref += f"@{self.digest}"
        options = []
        if self.path != PurePosixPath("."):
            options.append(f"path={self.path}")
        if self.semver is not None:
            options.append(f"semver={self.semver}")
        return ref + ("#" + "&".join(options) if options else "")

    def with_tag(self, tag: str) -> OCIReference:
        """The same repository at another tag (no digest, no semver)."""
        return OCIReference(self.host, self.port, self.repository, tag, None, self.path, None)


def parse_oci_url(url: str) -> tuple[OCIReference, str | None, str | None]:
    """Parse an ``oci://`` URL into ``(reference, username, password)``.

    Raises :class:`~gitops.errors.InvalidURLError` (naming the scrubbed URL) for any
    other scheme, a query string, an invalid host, repository, tag or digest, a tag or
    digest combined with ``semver=``, or an unknown fragment option.
    """
    shown = scrub(url)
    if not url.lower().startswith("oci://"):
        raise InvalidURLError(shown, "an OCI URL starts with oci://")
    # the userinfo first: a password may hold '#', '@' or '/' (see split_authority)
    userinfo, hostport, rest = split_authority(url[len("oci://") :])
    username, password = userinfo_credentials(userinfo)
    try:
        parts = urlsplit(f"oci://{hostport}{rest}")
        port = parts.port
    except ValueError:  # its message quotes the port, which may be a mistyped password
        raise InvalidURLError(shown, "invalid host or port") from None
    host = parts.hostname or ""
    if not host:
        raise InvalidURLError(shown, "missing registry host: oci://HOST[:PORT]/REPO[:TAG]")
    if not _valid_host(host):
        raise InvalidURLError(shown, f"invalid registry host {host!r}")
    if parts.query:
        # the query is not shown: it may hold a token (``?password=...``)
        raise InvalidURLError(
            shown.partition("?")[0], "unexpected query string; options go in the #fragment"
        )
    name, tag, digest = _split_name(shown, unquote(parts.path.lstrip("/")))
    fragment = parse_fragment(shown, parts.fragment, ("path", "semver"))
    subpath = safe_subpath(shown, fragment["path"]) if "path" in fragment else PurePosixPath(".")
    semver = fragment.get("semver")
    if semver is not None:
        if tag or digest:
            raise InvalidURLError(shown, "semver= selects a tag: give it without :TAG or @DIGEST")
        parse_range(shown, semver)
    elif not tag and not digest:
        tag = "latest"  # as container tools do
    return OCIReference(host, port, name, tag, digest, subpath, semver), username, password


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.fullmatch(host))


def _split_name(url: str, path: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> its three parts, each validated."""
    digest = None
    if "@" in path:
        path, _, digest = path.rpartition("@")
        if not DIGEST_RE.fullmatch(digest):
            raise InvalidURLError(url, f"invalid digest {digest!r}: expected sha256:<64 hex>")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG_RE.fullmatch(tag):
            raise InvalidURLError(url, f"invalid tag {tag!r}")
    if not path:
        raise InvalidURLError(url, "missing repository: oci://HOST[:PORT]/REPO[:TAG]")
    if not _REPO_RE.fullmatch(path) or len(path) > 255:
        raise InvalidURLError(
            url, f"invalid repository {path!r}: lowercase letters, digits, '.', '_', '-', '/'"
        )
    return path, tag, digest
