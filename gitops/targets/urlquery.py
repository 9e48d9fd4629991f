"""Strict parsing of a target URL's query into option strings (validated later by the
plugin's options model). Pure: never touches the file system or the network."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

from gitops.errors import InvalidURLError

__all__ = ["strict_query_options"]


def strict_query_options(url: str, query: str, known: Collection[str]) -> dict[str, str]:
    """``a=1&b=x`` as a dict; InvalidURLError naming ``url`` for a malformed query, a name
    not in ``known`` or a name given twice. Values are never quoted (they may be secrets)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidURLError(url, "malformed query (expected name=value&...)") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            raise InvalidURLError(url, f"unknown option {name!r}; known: {', '.join(known)}")
        if name in options:
            raise InvalidURLError(url, f"option {name!r} given twice")
        options[name] = value
    return options
