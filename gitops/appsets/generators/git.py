"""The ``git`` generator (directories): one parameter set per matching folder of a repository.

``url`` is a Git source URL without ``#path`` (``git+https://host/repo.git@main``;
``semver=`` is allowed in the fragment), ``directories`` the folders wanted::

    - git:
        url: git+https://host/fleet.git@main
        directories:
          - path: "apps/*"
          - path: apps/skip
            exclude: true

As Argo CD, each pattern is matched against every folder of the repository with Go's
``path.Match``: ``*`` and ``?`` never cross a ``/`` (so ``**`` is just ``*``: one
level), ``[...]`` is a class (``[^...]`` negated); a folder is generated when an include
pattern matches and no exclude pattern does. Hidden folders (``.git``, ``.github``) and
their contents are never listed. Parameters: ``path`` (``apps/web``), ``path.basename``
(``web``), ``path.basenameNormalized`` (lower-case, every run of characters other than
``a-z0-9-.`` replaced by ``-``: ``my_app`` -> ``my-app``) and ``path[N]`` (the N-th
segment, from 0).

The revision is resolved once per evaluation (one ``ls-refs`` round trip) and recorded
in the context; the folder list of a revision is kept in the context's cache, so a
re-evaluation without a new commit lists nothing again. The tree is fetched through the
Git source (the same artifact cache the generated Applications' sources use).
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from gitops.appsets.generators.base import ConfigModel, Generator, GeneratorContext, ParameterSet
from gitops.errors import InvalidURLError
from gitops.plugins import open_source
from gitops.sources.base import Source
from gitops.sources.git.url import parse_git_url
from gitops.urls import scrub

__all__ = ["DirectoryPattern", "GitGenerator", "list_directories", "match_path", "path_parameters"]

_NOT_NORMAL = re.compile(r"[^a-z0-9.-]+")
#: what a source URL's fragment decodes or splits on: ``#path={{path}}`` would name
#: another folder (``a+b`` is read ``a b``, ``100%41`` is ``100A``)
_NOT_IN_URL = re.compile(r"[%+&#]")


class DirectoryPattern(ConfigModel):
    """One ``directories`` entry: a ``path.Match`` pattern, excluded when ``exclude``."""

    path: str = Field(min_length=1)
    exclude: bool = False


class GitConfig(ConfigModel):
    """``url``, ``directories`` and the Git source's ``options`` (credentials, cache)."""

    url: str = Field(min_length=1)
    directories: list[DirectoryPattern] = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", scrub(self.url)
        yield "directories", self.directories
        yield "options", sorted(self.options)  # names only: values may be credentials


def match_path(pattern: str, path: str) -> bool:
    """Go's ``path.Match(pattern, path)``: per segment, ``*`` and ``?`` never cross ``/``."""
    wanted, parts = pattern.strip("/").split("/"), path.split("/")
    if len(wanted) != len(parts):
        return False
    return all(fnmatch.fnmatchcase(part, segment.replace("[^", "[!"))
               for segment, part in zip(wanted, parts, strict=True))


def list_directories(root: Path) -> list[str]:
    """Every folder under ``root`` as a ``/``-separated relative path, sorted; hidden ones
    (a name starting with ``.``) and their contents left out, symbolic links not followed."""
    found: list[str] = []
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not os.path.islink(os.path.join(current, d)))
        base = Path(current).relative_to(root).as_posix()
        found.extend(d if base == "." else f"{base}/{d}" for d in dirs)
    return sorted(found)


def path_parameters(path: str) -> ParameterSet:
    """``path``, ``path.basename``, ``path.basenameNormalized`` and ``path[N]`` of ``path``."""
    segments = path.split("/")
    basename = segments[-1]
    params: ParameterSet = {
        "path": path,
        "path.basename": basename,
        "path.basenameNormalized": _NOT_NORMAL.sub("-", basename.lower()).strip("-."),
    }
    params.update({f"path[{index}]": segment for index, segment in enumerate(segments)})
    return params


class _OpenSource:
    """One opened Git source and the lock that keeps it to one thread at a time."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.lock = threading.Lock()

    def close(self) -> None:
        self.source.close()


class GitGenerator(Generator):
    """Argo CD's Git directory generator."""

    name = "git"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        model = context.validate(GitConfig, config)
        try:
            spec = parse_git_url(model.url)
        except InvalidURLError as exc:
            raise context.error(f"url: {exc}") from None
        if spec.subpath.as_posix() != ".":
            raise context.error("url: give the repository without #path=; the folders come "
                                "from directories")
        key = ("git", model.url, tuple(sorted((k, repr(v)) for k, v in model.options.items())))
        opened = context.cache.get(key, lambda: _OpenSource(open_source(model.url, **model.options)))
        with opened.lock:
            revision = opened.source.resolve()
            listed: tuple[str, list[str]] | None = context.cache.peek((*key, "folders"))
            if listed is None or listed[0] != revision:  # only the latest listing is kept
                listed = (revision, list_directories(opened.source.fetch(revision).tree))
                context.cache.put((*key, "folders"), listed)
            folders = listed[1]
        context.record_revision(opened.source.url, revision)
        includes = [d.path for d in model.directories if not d.exclude]
        excludes = [d.path for d in model.directories if d.exclude]
        chosen = [folder for folder in folders
                  if any(match_path(p, folder) for p in includes)
                  and not any(match_path(p, folder) for p in excludes)]
        for folder in chosen:
            if _NOT_IN_URL.search(folder):
                raise context.error(f"folder {folder!r}: a name with '%', '+', '&' or '#' "
                                    "would be read as another folder in a source URL's "
                                    "#path= (rename it, or exclude it)")
        return [path_parameters(folder) for folder in chosen]
