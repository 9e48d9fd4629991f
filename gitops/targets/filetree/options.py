"""Options of the file-tree target and the ``dir:`` URL grammar.

``dir:PATH``, ``dir:///abs/path`` or a bare path; a ``dir:`` URL may carry options in a
query, with the keyword options' names: ``dir:out?fsync=true&lock_timeout=0``. A bare
path is taken literally (``?`` included), as is everything before the ``?`` of a
``dir:`` URL. Pure parsing and validation: this module never touches the file system.
"""

from __future__ import annotations

import re

from pydantic import Field

from gitops.errors import InvalidURLError
from gitops.options import PluginOptions
from gitops.targets.urlquery import strict_query_options

__all__ = ["DEFAULT_LOCK_TIMEOUT", "FileTreeOptions", "parse_url"]

#: Seconds :meth:`FileTreeTarget.lock` waits for another process's sync of the same root.
DEFAULT_LOCK_TIMEOUT = 2.0


class FileTreeOptions(PluginOptions):
    """Validated options of :class:`~gitops.targets.filetree.FileTreeTarget`."""

    create: bool = Field(
        default=True,
        description="create a missing root folder at the first write (never when only "
        "reading); False: the root must exist when the target is opened",
    )
    fsync: bool = Field(default=False, description="make every write durable before returning")
    adopt: bool = Field(
        default=False,
        description="the engine may take objects other inventories list (it still never "
        "prunes a key another inventory lists)",
    )
    lock_timeout: float = Field(
        default=DEFAULT_LOCK_TIMEOUT,
        ge=0,
        description="seconds lock() waits for another sync of the root before a conflict",
    )


_URL_OPTIONS = tuple(FileTreeOptions.model_fields)


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """The path a ``dir:`` URL or bare path names, and the URL's query options (strings).

    Raises InvalidURLError for another scheme, a host (``dir://host/...``), an empty path,
    or an unknown, repeated or malformed query option.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9.+-]*", scheme):
        path, query = url, ""  # a bare path, as kubectl accepts: taken literally
    elif scheme.lower() != "dir":
        raise InvalidURLError(url, f"not a file-tree URL (scheme {scheme!r}, expected 'dir')")
    else:
        path, _, query = rest.partition("?")
        if path.startswith("//"):
            path = path[2:]
            if not path.startswith("/"):
                raise InvalidURLError(
                    url, "a dir: URL names a local path: dir:PATH, dir:/abs/path or dir:///abs/path"
                )
    if not path:
        raise InvalidURLError(url, "empty path (use dir:. for the current directory)")
    return path, strict_query_options(url, query, _URL_OPTIONS)
