"""mkdocs hooks for the reference site (``hooks:`` in ``mkdocs.yml``).

- The documented code is this checkout's: the repository root goes first on ``sys.path``,
  so an installed ``gitops`` elsewhere is never what the site describes.
- ``cli-reference.md`` (from the argument parser, :mod:`gen_cli`) and ``api/modules.md``
  (from the package's files, :mod:`gen_modules`) are generated on every build; they are
  never files in ``docs/``.
- Links from a page to a repository file outside ``docs/`` (``../examples/...``) must
  name a file or folder that exists, else the build warns (and ``--strict`` fails). They
  become links to ``repo_url`` when the site has one, else the path in plain text: the
  site does not serve the repository.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = get_plugin_logger(__name__)

CLI_REFERENCE = "cli-reference.md"
MODULE_INDEX = "api/modules.md"
_LINK = re.compile(r"\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class _GriffeLimits(logging.Filter):
    """Drop griffe's notes on valid Python its static analysis cannot follow.

    ``__all__ += module.__all__`` (``gitops.testing``) is one: the names still exist, and
    no documented page lists that module's members.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Unsupported item in " in message and "__all__" in message)


def on_startup(command: str, dirty: bool) -> None:
    """Install the griffe filter once per process (``mkdocs serve`` rebuilds often)."""
    griffe = logging.getLogger("mkdocs.plugins.griffe")
    if not any(isinstance(f, _GriffeLimits) for f in griffe.filters):
        griffe.addFilter(_GriffeLimits())


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Import ``gitops`` and the generators from this checkout, not from site-packages."""
    root = str(_repo_root(config))
    docs = config.docs_dir
    for path in (docs, root):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the pages generated from the code: the CLI reference and the module index."""
    from gen_cli import cli_reference
    from gen_modules import module_index

    from gitops.cli import _parser

    files.append(File.generated(config, CLI_REFERENCE, content=cli_reference(_parser())))
    package = _repo_root(config) / "gitops"
    files.append(File.generated(config, MODULE_INDEX, content=module_index(package)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Check and rewrite links that leave ``docs/`` for a file of the repository."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        if not fenced:
            line = _LINK.sub(lambda match: _repo_link(match, page, config), line)
        lines.append(line)
    return "\n".join(lines)


def _repo_link(match: re.Match[str], page: Page, config: MkDocsConfig) -> str:
    target = match["target"]
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return match[0]
    path = target.split("#", 1)[0]
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), path))
    if not resolved.startswith("../"):
        return match[0]  # within docs/: mkdocs validates it
    root = _repo_root(config)
    repo_path = Path(os.path.normpath(Path(config.docs_dir).absolute() / resolved))
    if not repo_path.is_relative_to(root) or not repo_path.exists():
        log.warning("Doc file '%s' links to '%s', which is not a file of the repository",
                    page.file.src_uri, target)
        return match[0]
    relative = repo_path.relative_to(root).as_posix()
    if config.repo_url:
        return f"[{match['text']}]({config.repo_url.rstrip('/')}/blob/HEAD/{relative})"
    text = match["text"]
    return text if relative in text else f"{text} (`{relative}`)"


def _repo_root(config: MkDocsConfig) -> Path:
    """The folder holding ``mkdocs.yml`` (as named: symbolic links in it are the repository's)."""
    return Path(os.path.normpath(Path(config.config_file_path).absolute().parent))
