"""Walk a kustomization and everything it references, before kustomize runs.

kustomize's ``LoadRestrictionsRootOnly`` keeps *files* inside each kustomization's folder
but lets a base or component *folder* anywhere on disk through (``../../../etc``), and
it fetches remote bases over the network. This module checks what kustomize will read:
every kustomization file reachable through ``resources``, ``bases``, ``components``,
``generators``, ``transformers`` and ``validators``, and every file those name
(patches, generator sources, replacements, CRDs, configurations, OpenAPI schemas). A
path that resolves (symlinks included) outside the fetched tree, a remote base (unless
allowed) and Helm charts are refused with a :class:`~gitops.errors.ManifestError` naming
the kustomization file. The folders found are what a build can read, so their content
is the render's cache key.

It reads kustomization files only, never writes, and never quotes a value from them
other than the path or URL at fault (credentials scrubbed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops.errors import ManifestError
from gitops.renderers._paths import Tree, read_bounded
from gitops.urls import scrub

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = ["KUSTOMIZATION_FILES", "KustomizeGraph", "find_kustomization", "walk_kustomization"]

#: The file names kustomize recognises, in its order of preference.
KUSTOMIZATION_FILES: tuple[str, ...] = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: Fields whose entries are folders (kustomizations) or files, possibly remote.
_RESOURCE_FIELDS = ("resources", "bases", "components")
#: Fields whose entries are folders, files or inline YAML.
_PLUGIN_FIELDS = ("generators", "transformers", "validators")
#: Fields whose entries are files.
_FILE_LIST_FIELDS = ("crds", "configurations")
#: Fields holding a list of mappings with an optional ``path`` file.
_PATH_ITEM_FIELDS = ("patches", "patchesJson6902", "replacements")
_HELM_FIELDS = ("helmCharts", "helmChartInflationGenerator", "helmGlobals")

_KUSTOMIZATION_LIMIT = 1 << 20

# kustomize tries an entry as a Git repository (or an HTTP file) before the local disk.
_REMOTE = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@|git::|gh:|(?:github\.com|gitlab\.com|bitbucket\.org)/)"
)
# ``host.tld/path``: remote when no such local path exists.
_HOSTLIKE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?/")


@dataclass
class KustomizeGraph:
    """What a build of one kustomization may read."""

    #: the kustomization file of the folder being built, relative to the tree
    root_file: str
    #: resolved folders of every reachable kustomization (kustomize reads below these)
    folders: list[str] = field(default_factory=list)
    #: every reachable kustomization file, relative to the tree, in discovery order
    files: list[str] = field(default_factory=list)
    #: remote entries let through (``allow_remote``), credential-free
    remote: list[str] = field(default_factory=list)
    #: literal values of secret generators (scrubbed from kustomize's messages)
    secret_literals: list[str] = field(default_factory=list)
    #: files secret generators read, resolved (scrubbed from kustomize's messages)
    secret_files: list[str] = field(default_factory=list)


def find_kustomization(folder: str | os.PathLike[str], where: str = "") -> Path | None:
    """The kustomization file of ``folder``, or None; ManifestError if there are several.

    ``where`` names the folder in the error (default: ``folder`` as given).
    """
    found = [name for name in KUSTOMIZATION_FILES if os.path.isfile(os.path.join(folder, name))]
    if len(found) > 1:
        raise ManifestError(
            _named(where or os.fspath(folder), found[0]),
            f"found several kustomization files in one folder ({', '.join(found)}); keep one",
        )
    return Path(folder, found[0]) if found else None


def walk_kustomization(tree: Tree, *, allow_remote: bool = False) -> KustomizeGraph:
    """Check the kustomization at ``tree.root_real`` and all it references.

    Raises ManifestError naming the kustomization file whose entry is at fault: a path
    outside the tree, a remote entry (unless ``allow_remote``), a missing base, Helm.
    """
    return _Walker(tree, allow_remote).run()


class _Walker:
    def __init__(self, tree: Tree, allow_remote: bool) -> None:
        self.tree = tree
        self.allow_remote = allow_remote
        self.seen: set[str] = set()

    def run(self) -> KustomizeGraph:
        root = self.tree.root_real
        first = find_kustomization(root, self.tree.rel(root))
        if first is None:
            raise ManifestError(self.tree.rel(root), "no kustomization file in this folder")
        self.graph = KustomizeGraph(root_file=_named(self.tree.rel(root), first.name))
        stack: list[tuple[str, str, str]] = [(root, "", "")]
        while stack:
            folder, referrer, entry = stack.pop()
            if folder in self.seen:
                continue  # shared base or a cycle: kustomize reports cycles itself
            self.seen.add(folder)
            stack.extend(reversed(list(self._visit(folder, referrer, entry))))
        return self.graph

    def _visit(self, folder: str, referrer: str, entry: str) -> Iterator[tuple[str, str, str]]:
        """Check one kustomization; yield the folders it references."""
        path = find_kustomization(folder, self.tree.rel(folder))
        if path is None:
            raise ManifestError(
                referrer, f"{entry!r}: the folder {self.tree.rel(folder)} has no kustomization file"
            )
        real = os.path.realpath(path)
        where = _named(self.tree.rel(folder), path.name)
        if not self.tree.contains(real):
            raise ManifestError(where, "symlink leads outside the source tree")
        self.graph.folders.append(folder)
        self.graph.files.append(where)
        doc = self._load(real, where)
        for name in _HELM_FIELDS:
            if doc.get(name):
                raise ManifestError(
                    where, f"{name}: Helm charts are not supported; render the chart to YAML first"
                )
        for name in _RESOURCE_FIELDS:
            for item in _strings(doc, name, where):
                found = self._resource(folder, where, name, item)
                if found is not None:
                    yield found, where, item
        for name in _PLUGIN_FIELDS:
            for item in _strings(doc, name, where):
                if "\n" not in item:  # else inline YAML
                    found = self._resource(folder, where, name, item)
                    if found is not None:
                        yield found, where, item
        for name in _FILE_LIST_FIELDS:
            for item in _strings(doc, name, where):
                self._file(folder, where, name, item)
        for item in _strings(doc, "patchesStrategicMerge", where):
            if "\n" not in item:
                self._file(folder, where, "patchesStrategicMerge", item)
        for name in _PATH_ITEM_FIELDS:
            for mapping in _mappings(doc, name, where):
                self._path_of(folder, where, name, mapping)
        openapi = doc.get("openapi")
        if isinstance(openapi, dict):
            self._path_of(folder, where, "openapi", openapi)
        for name in ("configMapGenerator", "secretGenerator"):
            for generator in _mappings(doc, name, where):
                self._generator(folder, where, name, generator)

    def _load(self, real: str, where: str) -> dict[str, Any]:
        data = read_bounded(real, where, _KUSTOMIZATION_LIMIT)
        try:
            doc = yaml.load(data, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise ManifestError(where, f"invalid YAML{at}") from exc
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise ManifestError(where, "a kustomization must be a mapping")
        return doc

    def _resource(self, folder: str, where: str, name: str, item: str) -> str | None:
        """Check a resources/bases/components entry; its resolved folder if it is one."""
        local = os.path.join(folder, item)
        remote = _REMOTE.match(item) is not None or (
            not os.path.lexists(local) and _HOSTLIKE.match(item) is not None
        )
        if remote:
            self._remote(where, name, item)
            return None
        real = os.path.realpath(local)
        if not self.tree.contains(real):
            raise ManifestError(where, f"{name}: {item!r} resolves outside the source tree")
        if not os.path.exists(real):
            raise ManifestError(where, f"{name}: {item!r} does not exist")
        return real if os.path.isdir(real) else None

    def _remote(self, where: str, name: str, item: str) -> None:
        shown = scrub(item)
        if item.lower().startswith("file:"):
            raise ManifestError(where, f"{name}: {shown!r} reads outside the source tree")
        if not self.allow_remote:
            raise ManifestError(
                where,
                f"{name}: {shown!r} is remote; remote bases are not allowed "
                "(renderer option allow_remote)",
            )
        self.graph.remote.append(shown)

    def _file(self, folder: str, where: str, name: str, item: str) -> str:
        if _REMOTE.match(item) is not None:
            self._remote(where, name, item)
            return ""
        real = os.path.realpath(os.path.join(folder, item))
        if not self.tree.contains(real):
            raise ManifestError(where, f"{name}: {item!r} resolves outside the source tree")
        return real

    def _path_of(self, folder: str, where: str, name: str, mapping: dict[str, Any]) -> None:
        path = mapping.get("path")
        if path is not None:
            if not isinstance(path, str):
                raise ManifestError(where, f"{name}: path must be a string")
            self._file(folder, where, name, path)

    def _generator(self, folder: str, where: str, name: str, generator: dict[str, Any]) -> None:
        secret = name == "secretGenerator"
        sources: list[str] = []
        for source in _strings(generator, "files", where, name):
            sources.append(source.partition("=")[2] if "=" in source else source)
        sources.extend(_strings(generator, "envs", where, name))
        env = generator.get("env")
        if isinstance(env, str):
            sources.append(env)
        for source in sources:
            real = self._file(folder, where, name, source)
            if secret and real:
                self.graph.secret_files.append(real)
        if secret:
            for literal in _strings(generator, "literals", where, name):
                self.graph.secret_literals.append(literal)


def _named(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _strings(doc: dict[str, Any], name: str, where: str, parent: str = "") -> list[str]:
    value = doc.get(name)
    if value is None:
        return []
    label = f"{parent}.{name}" if parent else name
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ManifestError(where, f"{label} must be a list of strings")
    return value


def _mappings(doc: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    value = doc.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ManifestError(where, f"{name} must be a list of mappings")
    return value
