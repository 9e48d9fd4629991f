"""A griffe extension: the docstrings' reST markup as the site's Markdown.

The code's docstrings use Sphinx roles (``:class:`~gitops.model.Plan```) and ``::``
literal blocks, which Markdown would print as they are. This turns a role into a
cross-reference to the object's entry in the API reference when the site documents it,
and into plain code when it does not (an *optional* reference never fails the build),
and a paragraph's closing ``::`` into ``:``, its indented block staying a code block.
Only the docstring text the site shows changes; the code is untouched.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|const):`(?P<ref>[^`]+)`")
_LITERAL_MARKER = re.compile(r"(?m)(?<=\S)::$")
_BARE_LITERAL_MARKER = re.compile(r"(?m)^(\s*)::$")


def markdown_from_rest(text: str) -> str:
    """``text`` with Sphinx roles as optional cross-references and ``::`` blocks as code."""
    text = _ROLE.sub(_reference, text)
    text = _BARE_LITERAL_MARKER.sub("", text)
    return _LITERAL_MARKER.sub(":", text)


def _reference(match: re.Match[str]) -> str:
    ref = match["ref"].strip()
    if "<" in ref and ref.endswith(">"):  # :class:`title <target>`
        title, _, ref = ref[:-1].partition("<")
        title = title.strip()
    else:
        title = ""
    short = ref.startswith("~")
    identifier = ref.lstrip("~.").removesuffix("()")
    if not title:
        title = identifier.rsplit(".", 1)[-1] if short else identifier
        title += "()" if ref.endswith("()") else ""
    return (f'<autoref identifier="{html.escape(identifier)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>")


class SphinxRoles(griffe.Extension):
    """Rewrite each loaded object's docstring for Markdown (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every module, class, function and attribute it loads."""
        if obj.docstring is not None:
            obj.docstring.value = markdown_from_rest(obj.docstring.value)
