"""Parse Git source URLs: transport, remote, ``@REF``, ``#path=SUBDIR&semver=RANGE``.

Grammar (one line, no spaces)::

    git+file:///ABS/PATH[@REF][#path=SUBDIR][&semver=RANGE]
    git+git://HOST[:PORT]/PATH[@REF][#...]            (git:// is accepted too)
    git+http[s]://[USER[:PASSWORD]@]HOST[:PORT]/PATH[@REF][#...]
    git+ssh://[USER@]HOST[:PORT]/PATH[@REF][#...]

``REF`` is a branch, a tag (lightweight or annotated), a full ``refs/...`` name or a
40-hex commit; without it the remote's HEAD branch is used. The last ``@`` of the path
starts the ref, so a literal ``@`` in a path or ref is written ``%40``. This module is
pure: it never touches the network, and :attr:`GitURL.display` never holds a password.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from gitops.errors import InvalidURLError
from gitops.urls import parse_fragment, safe_subpath, scrub, split_authority, userinfo_credentials
from gitops.versions import parse_range

__all__ = ["GitURL", "Transport", "parse_git_url", "valid_ref_name", "with_selection"]

Transport = Literal["file", "git", "http", "https", "ssh"]

_SCHEMES: dict[str, Transport] = {
    "git+file": "file",
    "git+git": "git",
    "git": "git",
    "git+http": "http",
    "git+https": "https",
    "git+ssh": "ssh",
}
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
_USAGE = (
    "expected git+file:///path, git+git://host/path, git+https://host/path or "
    "git+ssh://[user@]host/path, optionally followed by @REF and #path=SUBDIR&semver=RANGE"
)


@dataclass(frozen=True)
class GitURL:
    """A parsed Git source URL. ``password`` comes from the userinfo and is never shown."""

    transport: Transport
    host: str
    port: int | None
    username: str | None
    path: str
    ref: str | None
    subpath: PurePosixPath
    semver: str | None
    display: str
    password: str | None = field(default=None, repr=False)

    @property
    def commit(self) -> str | None:
        """The pinned commit when ``@REF`` is a full 40-hex SHA-1, else None."""
        if self.ref is not None and _SHA1_RE.match(self.ref):
            return self.ref.lower()
        return None

    @property
    def remote(self) -> str:
        """The credential-free remote URL, without ref or fragment (``https://h/r.git``)."""
        if self.transport == "file":
            return f"file://{quote(self.path)}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host + (f":{self.port}" if self.port else "")
        if self.transport == "ssh" and self.username:
            netloc = f"{quote(self.username, safe='')}@{netloc}"
        return f"{self.transport}://{netloc}{quote(self.path)}"

    @property
    def remote_key(self) -> str:
        """A file-name-safe, stable key for the remote (the cache repository's name)."""
        identity = self.remote.rstrip("/")
        if identity.endswith(".git"):
            identity = identity[:-4]
        digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
        name = PurePosixPath(self.path.rstrip("/")).name.removesuffix(".git") or "repo"
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.host or 'local'}-{name}")[:60]
        return f"{readable.strip('._-') or 'repo'}-{digest}"

    def same_origin(self, other: GitURL) -> bool:
        """True when ``other`` is served by the same transport, host and port."""
        return (self.transport, self.host.lower(), self.port) == (
            other.transport,
            other.host.lower(),
            other.port,
        )


def valid_ref_name(ref: str) -> bool:
    """A cheap check of git's ref-name rules (``git check-ref-format``), for early errors."""
    if not ref or ref.startswith(("-", "/")) or ref.endswith(("/", ".", ".lock")):
        return False
    if any(bad in ref for bad in ("..", "@{", "//", "/.")) or ref == "@":
        return False
    return not any(ord(c) < 0x20 or c in " ~^:?*[\\\x7f" for c in ref)


def parse_git_url(url: str) -> GitURL:
    """Parse a Git source URL; raises InvalidURLError naming the (scrubbed) URL."""
    shown = scrub(url)
    match = _SCHEME_RE.match(url)
    if match is None or match.group(1).lower() not in _SCHEMES:
        raise InvalidURLError(shown, f"not a Git source URL; {_USAGE}")
    transport = _SCHEMES[match.group(1).lower()]
    # the userinfo first: a password may hold '#', '@' or '/' (see split_authority)
    userinfo, hostport, rest = split_authority(url[match.end() :])
    raw_path, _, fragment = rest.partition("#")
    options = parse_fragment(shown, fragment, ("path", "semver"))

    raw_path, at, raw_ref = raw_path.rpartition("@") if "@" in raw_path else (raw_path, "", "")
    ref = unquote(raw_ref) if at else None
    if at and not ref:
        raise InvalidURLError(shown, "empty ref after '@'")
    if ref is not None and not (_SHA1_RE.match(ref) or valid_ref_name(ref)):
        raise InvalidURLError(shown, f"{ref!r} is not a valid branch, tag or commit name")
    semver = options.get("semver")
    if semver is not None and ref is not None:
        raise InvalidURLError(shown, "give either @REF or semver=RANGE, not both")
    if semver is not None and not semver.strip():
        raise InvalidURLError(shown, "semver range is empty")
    subpath = safe_subpath(url, options.get("path", ""))

    if "?" in raw_path:
        # the query is not shown: it may hold a token (``?password=...``); a literal
        # '?' in a repository path or ref is written %3F
        raise InvalidURLError(
            shown.partition("?")[0], "unexpected query string; options go in the #fragment"
        )
    path = unquote(raw_path)
    if not path or path == "/":
        raise InvalidURLError(shown, f"no repository path; {_USAGE}")
    host, port = _split_hostport(shown, transport, hostport)
    username, password = userinfo_credentials(userinfo)
    _check_userinfo(shown, transport, username, password)
    if transport == "file" and (host not in ("", "localhost") or username or port):
        raise InvalidURLError(shown, "git+file:// takes an absolute local path: git+file:///path")
    if transport != "file" and not host:
        raise InvalidURLError(shown, f"no host; {_USAGE}")

    display = _display(match.group(1), transport, userinfo, hostport, raw_path,
                       raw_ref if at else None, fragment)
    return GitURL(
        transport=transport,
        host="" if transport == "file" else host,
        port=port,
        username=username,
        path=path,
        ref=ref,
        subpath=subpath,
        semver=semver,
        display=display,
        password=password,
    )


def with_selection(url: GitURL, path: str, semver: str | None, extra: str = "") -> GitURL:
    """``url`` with the subfolder ``path`` and ``semver`` range the options chose.

    ``display`` shows them as the fragment (``#path=...&semver=...``), followed by
    ``extra`` (other options as the URL wrote them). Raises InvalidURLError for a semver
    range beside ``@REF``, or a range that does not parse.
    """
    shown = url.display
    if semver is not None:
        if url.ref is not None:
            raise InvalidURLError(shown, "give either @REF or semver=RANGE, not both")
        parse_range(shown, semver)
    selection = [f"path={quote(path, safe='/')}"] if path else []
    if semver is not None:
        selection.append(f"semver={quote(semver, safe='^~<>=*., ')}")
    fragment = "&".join(selection + ([extra] if extra else []))
    display = url.display.partition("#")[0] + (f"#{fragment}" if fragment else "")
    return replace(url, subpath=PurePosixPath(path) if path else PurePosixPath("."),
                   semver=semver, display=display)


def _split_hostport(shown: str, transport: Transport, hostport: str) -> tuple[str, int | None]:
    if not hostport:
        return "", None
    try:
        parts = urlsplit(f"x://{hostport}/")
        port = parts.port
    except ValueError:
        hint = ""
        if transport == "ssh":
            hint = " (scp-like host:path is not a URL; write git+ssh://user@host/path)"
        raise InvalidURLError(shown, f"invalid host or port{hint}") from None
    return parts.hostname or "", port


def _check_userinfo(
    shown: str, transport: Transport, username: str | None, password: str | None
) -> None:
    if transport in ("git", "file") and (username or password):
        raise InvalidURLError(shown, f"{transport}:// URLs take no user or password")
    if transport == "ssh" and password:
        raise InvalidURLError(
            shown, "SSH passwords are not supported; use an SSH key (ssh_key option)"
        )


def _display(
    scheme: str, transport: Transport, userinfo: str | None, hostport: str, raw_path: str,
    raw_ref: str | None, fragment: str,
) -> str:
    """The URL as given, minus any password or token (an SSH user is kept: it is an address)."""
    netloc = hostport
    if userinfo is not None:
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if transport == "ssh" and user else hostport
    scheme = "git+git" if scheme.lower() == "git" else scheme.lower()
    shown = f"{scheme}://{netloc}{raw_path}"
    if raw_ref is not None:
        shown += f"@{raw_ref}"
    if fragment:
        shown += f"#{fragment}"
    return shown
