"""The ``jsonl`` renderer: every ``*.jsonl`` file under the root, one manifest per line.

``Reconciler(source, target, renderer=open_renderer("jsonl"))``. Files are walked with
:func:`gitops.tree.walk` (sorted; hidden and ``.sourceignore``'d entries skipped;
symlinked folders never followed, a file symlink read only when it stays inside the
root), and each line is checked with :func:`gitops.manifests.check_documents`, so errors
read like the YAML renderer's: ``app/web.jsonl (document 3): ...``, where the document is
the zero-based line. Resources are returned as declared; the engine places them.

A pure function of the files: it never writes, never reads outside the root, and never
quotes a line in an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from gitops.errors import ManifestError
from gitops.manifests import DEFAULT_LIMITS, Document, check_documents
from gitops.model import RenderContext, Resource
from gitops.renderers.base import Renderer
from gitops.tree import walk

__all__ = ["JsonlRenderer"]

SUFFIX = ".jsonl"


class JsonlRenderer(Renderer):
    """Manifests from JSON-lines files."""

    name: ClassVar[str] = "jsonl"

    def render(self, root: Path, context: RenderContext) -> list[Resource]:
        """The resources of every ``*.jsonl`` file under ``root``; ManifestError naming the
        file and line (as its document index) at fault."""
        documents: list[Document] = []
        for item in walk(root):
            if item.relpath.endswith(SUFFIX):
                documents.extend(_documents(item.path, item.relpath))
        return check_documents(documents)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _documents(path: Path, relpath: str) -> list[Document]:
    limit = DEFAULT_LIMITS.max_file_bytes
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ManifestError(relpath, f"cannot read: {exc.strerror}") from exc
    if len(data) > limit:
        raise ManifestError(relpath, f"file is over the limit of {limit} bytes")
    documents: list[Document] = []
    for index, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            manifest = json.loads(line)
        except UnicodeDecodeError as exc:
            raise ManifestError(relpath, f"not valid UTF-8 ({exc.reason})", index) from None
        except json.JSONDecodeError as exc:
            raise ManifestError(relpath, f"invalid JSON at column {exc.colno}: {exc.msg}",
                                index) from None
        except RecursionError:
            raise ManifestError(relpath, "JSON nested too deeply", index) from None
        documents.append(Document(manifest, relpath, index))
    return documents
