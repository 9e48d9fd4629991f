"""Where a commit's submodules come from: ``.gitmodules`` lookup and URL resolution.

Submodules are followed only when the source asks for it. A submodule URL may be
absolute (``https://``, ``ssh://``, ``git://``, scp-like ``user@host:path``) or relative
to the superproject's remote (``../other.git``). A local path or ``file://`` URL is
refused unless the superproject itself is local: a remote repository must never make
us read this machine's files (git's ``protocol.file.allow=user`` rule). Credentials are
the caller's business (:meth:`GitURL.same_origin`). Pure functions: no I/O.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
from pathlib import PurePosixPath

from dulwich.config import ConfigFile, parse_submodules

from gitops.errors import InvalidURLError, SourceError
from gitops.sources.git.url import GitURL, parse_git_url
from gitops.urls import scrub

__all__ = ["resolve_submodule_url", "submodule_url"]

_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>.+)$")
_SCHEMES = ("http://", "https://", "ssh://", "git://", "file://", "git+ssh://")


def submodule_url(gitmodules: bytes | None, path: str) -> str | None:
    """The URL ``.gitmodules`` gives for the submodule at ``path``, or None."""
    if gitmodules is None:
        return None
    try:
        config = ConfigFile.from_file(io.BytesIO(gitmodules), expand_includes=False)
    except (ValueError, UnicodeDecodeError):
        return None
    for sm_path, url, _name in parse_submodules(config):
        if sm_path.decode("utf-8", "replace").strip("/") == path:
            return url.decode("utf-8", "replace").strip()
    return None


def resolve_submodule_url(parent: GitURL, raw: str, path: str) -> GitURL:
    """The remote of the submodule at ``path`` whose ``.gitmodules`` URL is ``raw``.

    Raises SourceError (naming the superproject) for a URL that cannot be used.
    """
    shown = parent.display
    where = f"submodule {path!r}"
    if raw.startswith(("./", "../")):
        joined = posixpath.normpath(posixpath.join(parent.path, raw))
        return dataclasses.replace(parent, path=joined, ref=None, semver=None,
                                   subpath=PurePosixPath("."),
                                   display=_display(parent, joined))
    if raw.startswith("/"):
        url = _parse(shown, where, f"git+file://{raw}")
    elif raw.startswith(_SCHEMES):
        url = _parse(shown, where, raw if raw.startswith("git+") else f"git+{raw}")
    elif (match := _SCP_RE.match(raw)) is not None:
        user, host = match.group("user"), match.group("host")
        path_part = match.group("path")
        url = GitURL(transport="ssh", host=host, port=None, username=user, path=path_part,
                     ref=None, subpath=PurePosixPath("."), semver=None,
                     display=f"git+ssh://{user + '@' if user else ''}{host}/{path_part}")
    else:
        raise SourceError(shown, f"{where} has an unsupported URL {scrub(raw)!r}")
    if url.transport == "file" and parent.transport != "file":
        raise SourceError(shown, f"{where} points to a local path ({url.path}); refused for "
                                 "a remote repository")
    return url


def _parse(shown: str, where: str, url: str) -> GitURL:
    try:
        parsed = parse_git_url(url)
    except InvalidURLError as exc:
        raise SourceError(shown, f"{where} has an invalid URL: {exc.reason}") from exc
    return dataclasses.replace(parsed, ref=None, semver=None, subpath=PurePosixPath("."))


def _display(parent: GitURL, path: str) -> str:
    scheme = f"git+{parent.transport}://"
    remote = parent.remote
    netloc = remote.split("://", 1)[1].split("/", 1)[0] if parent.transport != "file" else ""
    return f"{scheme}{netloc}{path}"
