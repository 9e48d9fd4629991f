"""URL helpers shared by source and target plugins: credentials, fragments, subpaths.

Every URL a user sees (errors, logs, results) must be credential-free: :func:`scrub`
removes userinfo passwords and tokens, :func:`redact` removes known secrets from any
text (an error message from a dependency, say). ``#path=SUBDIR&semver=RANGE`` fragments
are parsed by :func:`parse_fragment`; :func:`safe_subpath` refuses subpaths that leave
the artifact. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from gitops.errors import InvalidURLError

__all__ = ["parse_fragment", "redact", "safe_subpath", "scrub", "split_userinfo"]

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
REDACTED = "***"


def scrub(url: str) -> str:
    """``url`` without a password or token in its userinfo (``user:***@host``)."""

    def replace(match: re.Match[str]) -> str:
        user, sep, _ = match.group("userinfo").partition(":")
        if not sep:
            # a lone userinfo may be a token (https://TOKEN@host); an ssh user is not secret
            scheme = match.group("scheme").lower()
            keep = "ssh" in scheme or user in ("git", "")
            return f"{match.group('scheme')}{user if keep else REDACTED}@"
        return f"{match.group('scheme')}{user}:{REDACTED}@"

    return _USERINFO_RE.sub(replace, url)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Return ``(url without userinfo password, username, password)``, percent-decoded."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return clean, username, password


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret (and its URL-encoded form) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 1:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, REDACTED)
    return scrub(text)


def parse_fragment(url: str, fragment: str, allowed: Iterable[str]) -> dict[str, str]:
    """Parse ``path=apps&semver=1.x`` into a dict; unknown or repeated keys are errors."""
    allowed = set(allowed)
    if not fragment:
        return {}
    found: dict[str, str] = {}
    for key, value in parse_qsl(fragment, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            raise InvalidURLError(
                scrub(url), f"unknown fragment option {key!r}; expected one of {sorted(allowed)}"
            )
        if key in found:
            raise InvalidURLError(scrub(url), f"fragment option {key!r} given twice")
        found[key] = value
    if not found and fragment:
        raise InvalidURLError(scrub(url), f"cannot parse fragment {fragment!r}")
    return found


def safe_subpath(url: str, path: str) -> PurePosixPath:
    """A normalized relative subpath; refuses absolute paths and any ``..`` component."""
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise InvalidURLError(scrub(url), f"path {path!r} must be relative to the artifact root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidURLError(scrub(url), f"path {path!r} leaves the artifact root")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")
