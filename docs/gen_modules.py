"""The module index page, generated from the package's files.

Every module of ``gitops`` (a package's ``__init__.py`` names the package) with the first
line of its docstring, read with :mod:`ast`: nothing is imported, so a module that needs
an optional dependency is listed like any other, and a module added to the package
appears on the next build. A module the API reference documents links to its entry.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

from gen_roles import markdown_from_rest


def module_index(package: Path) -> str:
    """Markdown: one table row per module under ``package`` (a folder), sorted by name."""
    rows = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if any(part.startswith("_") for part in name.split(".")):
            continue
        rows.append(f"| {_reference(name)} | {_summary(path)} |")
    return "\n".join([
        "# Module index",
        "",
        f"Every module of `{package.name}`, generated from the source at build time, with the "
        "first line of its docstring. What `gitops` exports is the promised API "
        "([Python API](index.md)); the rest is importable but may change. Modules the "
        "reference documents link to their entry.",
        "",
        "| module | what it is for |",
        "| --- | --- |",
        *rows,
        "",
    ])


def _reference(name: str) -> str:
    """An optional cross-reference: a link when the site documents ``name``, else code."""
    escaped = html.escape(name)
    return f'<autoref identifier="{escaped}" optional><code>{escaped}</code></autoref>'


def _summary(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = docstring.strip().split("\n\n", 1)[0]
    text = " ".join(first.split())
    return markdown_from_rest(html.escape(text, quote=False)).replace("|", "&#124;") or "—"
