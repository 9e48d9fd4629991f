"""Options written in a source URL's ``#fragment``: ``#path=apps&semver=^1.2&timeout=10``.

The fragment is each source's one place for URL options (a Git or registry URL's own
query belongs to the server). Names may be written with hyphens (``recurse-submodules``)
or underscores; they come out as the options model's field names, so a keyword argument
given for the same option wins when the two are merged. Options that hold secrets are
refused here: a URL is shown in logs and results, and a password belongs in userinfo
(scrubbed), a keyword argument or the environment. Unknown names are left for the
options model to refuse, in one error with the other problems. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import PurePosixPath
from urllib.parse import parse_qsl

from gitops.errors import InvalidURLError
from gitops.urls import scrub

__all__ = ["fragment_options", "location", "subpath"]


def location(url: str) -> str:
    """``url`` as option errors name it: credential-free and without its fragment (whose
    values an error must not repeat)."""
    return scrub(url).partition("#")[0]


def fragment_options(shown: str, fragment: str, *, secret: Collection[str] = ()) -> dict[str, str]:
    """``a=1&b-c=x`` -> ``{"a": "1", "b_c": "x"}``; ``""`` gives ``{}``.

    ``shown`` is the credential-free URL errors name. Raises InvalidURLError for a
    fragment that is not ``name=value`` pairs, a name given twice, or a name in ``secret``
    (never quoting a value). ``+`` in a value is a space, as in a query: write ``%2B``.
    """
    if not fragment:
        return {}
    found: dict[str, str] = {}
    pairs = parse_qsl(fragment, keep_blank_values=True)
    if not pairs or any("=" not in part for part in fragment.split("&") if part):
        raise InvalidURLError(shown, "the #fragment holds options written name=value&name=value")
    for raw, value in pairs:
        name = raw.strip().replace("-", "_")
        if name in found:
            raise InvalidURLError(shown, f"option {raw!r} given twice in the URL")
        if name in secret:
            raise InvalidURLError(
                shown, f"option {raw!r} holds a secret and cannot be written in the URL (it "
                       "would be shown): pass it as a keyword argument or in the environment")
        found[name] = value
    return found


def subpath(value: str) -> str:
    """``value`` normalized (``""`` for the root); ValueError if it leaves the root.

    Shared by every source's ``path`` option; the message never quotes the value.
    """
    if value.startswith("/") or "\\" in value or "\x00" in value:
        raise ValueError("must be a relative path inside the source")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("must stay inside the source (no '..')")
    return PurePosixPath(*parts).as_posix() if parts else ""
