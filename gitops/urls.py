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
from urllib.parse import parse_qsl, quote, unquote

from gitops.errors import InvalidURLError

__all__ = [
    "REDACTED",
    "parse_fragment",
    "redact",
    "safe_subpath",
    "scrub",
    "split_authority",
    "split_userinfo",
    "userinfo_credentials",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>\S*)")
_HOST_END_RE = re.compile(r"[/?#]")
REDACTED = "***"


def split_authority(rest: str) -> tuple[str | None, str, str]:
    """Split what follows ``scheme://`` into ``(userinfo, host[:port], remainder)``.

    ``userinfo`` is None when there is none. As git and pip read a URL whose password
    holds unencoded ``@``, ``#``, ``?`` or ``:``, everything up to the *last* ``@``
    before the first ``/`` is userinfo, so ``user:p@ss#w@rd@host/repo`` has the
    password ``p@ss#w@rd`` and no fragment. A ``/`` in the password is read too when
    what precedes it cannot be a host (``user:pa/ss@host/repo``: ``pa`` is no port).
    ``remainder`` starts at the first ``/``, ``?`` or ``#`` after the host: ``#path=``
    after the path stays a fragment.
    """
    slash = rest.find("/")
    head = rest if slash < 0 else rest[:slash]
    at = head.rfind("@")
    if at < 0 and slash >= 0 and _password_before_slash(head):
        first = rest.find("@", slash)
        if first >= 0:
            end = rest.find("/", first)
            at = rest.rfind("@", 0, end if end >= 0 else len(rest))
    if at < 0:
        userinfo, after = None, rest
    else:
        userinfo, after = rest[:at], rest[at + 1 :]
    match = _HOST_END_RE.search(after)
    end = match.start() if match else len(after)
    return userinfo, after[:end], after[end:]


def _password_before_slash(head: str) -> bool:
    """``user:pa`` (a non-numeric "port"): the start of a password with a ``/`` in it."""
    if head.startswith("["):
        return False
    _, colon, port = head.partition(":")
    return bool(colon) and not _HOST_END_RE.split(port, 1)[0].isdigit()


def userinfo_credentials(userinfo: str | None) -> tuple[str | None, str | None]:
    """``(username, password)`` from a userinfo, percent-decoded; None for what is absent.

    The password is everything after the first ``:`` (a username has none).
    """
    if userinfo is None:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon and password else None)


def scrub(url: str) -> str:
    """``url`` (or any text holding URLs) without a password or token in a userinfo.

    ``user:***@host``; a lone userinfo may be a token (``https://TOKEN@host``) and is
    replaced whole, but an SSH user (or ``git``) is an address and stays. The userinfo
    is found as :func:`split_authority` finds it, so a password with ``@``, ``#`` or
    ``/`` in it is hidden whole.
    """

    def replace(match: re.Match[str]) -> str:
        scheme, rest = match.group("scheme"), match.group("rest")
        userinfo, hostport, remainder = split_authority(rest)
        remainder = _URL_IN_TEXT_RE.sub(replace, remainder)  # a URL within the URL
        if userinfo is None:
            return f"{scheme}{hostport}{remainder}"
        user, colon, _ = userinfo.partition(":")
        if colon:
            shown = f"{user}:{REDACTED}"
        else:
            shown = user if "ssh" in scheme.lower() or user in ("git", "") else REDACTED
        return f"{scheme}{shown}@{hostport}{remainder}"

    return _URL_IN_TEXT_RE.sub(replace, url)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Return ``(url without userinfo password, username, password)``, percent-decoded."""
    match = _SCHEME_RE.match(url)
    if match is None:
        return url, None, None
    userinfo, hostport, remainder = split_authority(url[match.end() :])
    username, password = userinfo_credentials(userinfo)
    if userinfo is None:
        return url, None, None
    user = f"{quote(username, safe='')}@" if username else ""
    return f"{match.group()}{user}{hostport}{remainder}", username, password


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
