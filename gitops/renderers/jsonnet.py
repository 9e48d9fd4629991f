"""The Jsonnet renderer: a folder of ``*.jsonnet`` (and plain YAML) files, as Argo CD renders it.

Every ``*.jsonnet`` file of the folder is evaluated with the ``jsonnet`` package from
PyPI (``.libsonnet`` files are libraries, never entry points); each result may be one
object, an array of objects or a ``List``, all flattened. ``.yaml``/``.yml``/``.json`` files
beside them are read as plain manifests, as in an Argo CD directory application. Only
the folder itself is read unless ``recurse`` is set (Argo CD's default); folders named
in ``libs`` are never read for entry points.

Imports resolve against the importing file's folder, then the ``libs`` folders
(right-most first, like ``jsonnet -J``), then the folder being rendered. Library paths
are relative to the whole tree (the repository root, as in Argo CD); an import that
resolves (symlinks included) outside the tree is refused. Nothing is written.

Options (constructor keywords or ``RenderContext.options["jsonnet"]``)::

    {"ext_vars": {"env": "prod"}, "ext_code": {"replicas": "3"},
     "tlas": {"name": "web"}, "tla_code": {"debug": "true"},
     "libs": ["vendor"], "recurse": false}

Argo CD's spellings are accepted too: ``extVars``/``tlas`` as lists of ``{name, value,
code}``. Results are cached by the content of every file an evaluation read, and every
path it probed, so an unchanged tree is not evaluated again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, model_validator

from gitops.errors import ManifestError, NotSupportedError
from gitops.manifests import DEFAULT_LIMITS, Document, Limits, manifest_documents, parse_documents
from gitops.model import RenderContext, Resource
from gitops.options import PluginOptions
from gitops.renderers._options import context_options, validate
from gitops.renderers._paths import Tree, read_bounded
from gitops.renderers.base import Renderer
from gitops.renderers.substitute import check_substituted
from gitops.tree import is_manifest_path, walk
from gitops.urls import redact

__all__ = ["JsonnetOptions", "JsonnetRenderer", "has_jsonnet_entry_points"]

_CACHE_SIZE = 8
_MAX_MESSAGE_LINES = 6
_MAX_MESSAGE = 600


class JsonnetOptions(PluginOptions):
    """Options of the Jsonnet renderer; see the module docstring."""

    ext_vars: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("ext_vars", "extVars")
    )
    ext_code: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("ext_code", "extCode")
    )
    tlas: dict[str, str] = Field(default_factory=dict)
    tla_code: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("tla_code", "tlaCode")
    )
    libs: tuple[str, ...] = ()
    recurse: bool = False
    max_stack: int = Field(default=500, ge=10, le=100_000)
    #: seconds one entry file may evaluate (a tail-recursive loop never ends otherwise)
    timeout: float = Field(default=60.0, gt=0, le=3600)
    #: bytes of JSON one entry file may produce
    max_output_bytes: int = Field(default=64 << 20, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _argo_lists(cls, data: Any) -> Any:
        """Argo CD's ``[{name, value, code}]`` lists into the string and code mappings."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for names, plain, code in (
            (("extVars", "ext_vars"), "ext_vars", "ext_code"),
            (("tlas",), "tlas", "tla_code"),
        ):
            for name in names:
                if isinstance(data.get(name), list):
                    items = data.pop(name)
                    strings, codes = dict(data.pop(plain, {})), dict(data.pop(code, {}))
                    for item in items:
                        if not isinstance(item, Mapping) or "name" not in item:
                            raise ValueError(f"{name}: each item needs a name and a value")
                        target = codes if item.get("code") else strings
                        target[str(item["name"])] = item.get("value", "")
                    data[plain], data[code] = strings, codes
        return data

    def secrets(self) -> list[str]:
        """Every value given, to keep out of messages: as given, as a JSON string shows it
        (``std.manifestJson``, ``std.toString`` escape quotes and newlines), and each line
        of a multi-line value; longest first, so a shorter form never splits a longer one."""
        maps = (self.ext_vars, self.ext_code, self.tlas, self.tla_code)
        forms: set[str] = set()
        for value in (value for mapping in maps for value in mapping.values()):
            forms.update((value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
            forms.update(value.splitlines())
        return sorted((form for form in forms if len(form.strip()) >= 4), key=len, reverse=True)


def has_jsonnet_entry_points(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a (non-hidden) ``*.jsonnet`` file."""
    try:
        with os.scandir(folder) as entries:
            return any(
                e.name.endswith(".jsonnet") and not e.name.startswith(".") and e.is_file()
                for e in entries
            )
    except OSError:
        return False


class JsonnetRenderer(Renderer):
    """Evaluate the ``*.jsonnet`` files of ``root`` (plus plain YAML beside them).

    Keywords are :class:`JsonnetOptions` defaults; ``context.options["jsonnet"]``
    overrides them per render. Errors name the file, relative to the tree.
    """

    name: ClassVar[str] = "jsonnet"
    Options: ClassVar[type[JsonnetOptions]] = JsonnetOptions
    #: applies ``context.variables`` itself, before validating
    substitutes: ClassVar[bool] = True

    def __init__(self, limits: Limits | None = None, **options: object) -> None:
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.options = validate(JsonnetOptions, self.name, options)
        self._cache: OrderedDict[tuple[object, ...], _Cached] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        try:
            import _jsonnet  # noqa: F401
        except ImportError:
            return False, "the jsonnet package is not installed (pip install jsonnet)"
        return True, ""

    def render(self, root: Path, context: RenderContext | None = None) -> list[Resource]:
        """The resources of ``root``'s Jsonnet and YAML files, validated, as declared."""
        tree = Tree(root, context)
        options = context_options(JsonnetOptions, self.name, self.options, context)
        libs = [_library(tree, lib) for lib in options.libs]
        files = self._entry_files(tree, libs, options.recurse)
        key = (tree.rel(tree.root_real), options.model_dump_json(),
               tuple((rel, hashlib.sha256(data).digest()) for rel, _, data in files))
        variables = context.variables if context is not None else {}
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.still_valid():
                self._cache.move_to_end(key)
                return check_substituted(cached.documents, variables, limits=self.limits)
        imports = _Imports(tree, libs, self.limits.max_file_bytes)
        documents = self._evaluate(tree, files, imports, options)
        with self._lock:
            self._cache[key] = _Cached(tuple(documents), dict(imports.probes))
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return check_substituted(documents, variables, limits=self.limits)

    def _entry_files(
        self, tree: Tree, libs: list[str], recurse: bool
    ) -> list[tuple[str, str, bytes]]:
        """``(relpath to the tree, absolute path, bytes)`` of each file to render, sorted."""
        found: list[tuple[str, str, bytes]] = []
        budget = self.limits.max_total_bytes
        for item in walk(tree.root_real):
            if not recurse and "/" in item.relpath:
                continue
            if not (item.relpath.endswith(".jsonnet") or is_manifest_path(item.relpath)):
                continue
            real = os.path.realpath(item.path)
            if any(real.startswith(lib.rstrip(os.sep) + os.sep) for lib in libs):
                continue
            rel = _join(tree.rel(tree.root_real), item.relpath)
            data = read_bounded(item.path, rel, self.limits.max_file_bytes)
            budget -= len(data)
            if budget < 0:
                raise ManifestError(rel, f"the files exceed {self.limits.max_total_bytes} bytes")
            found.append((rel, os.fspath(item.path), data))
        return found

    def _evaluate(
        self,
        tree: Tree,
        files: list[tuple[str, str, bytes]],
        imports: _Imports,
        options: JsonnetOptions,
    ) -> list[Document]:
        """Every file's documents, parsed or evaluated (not yet validated), in order."""
        documents: list[Document] = []
        for rel, path, data in files:
            if rel.endswith(".jsonnet"):
                documents.extend(
                    manifest_documents(_run(tree, rel, path, data, imports, options), rel)
                )
            else:
                documents.extend(parse_documents(data, rel, limits=self.limits))
            if len(documents) > self.limits.max_resources:
                raise ManifestError(rel, f"more than {self.limits.max_resources} resources")
        return documents


class _Cached:
    """A render's documents and what it probed: path -> content digest (None: absent)."""

    def __init__(self, documents: tuple[Document, ...], probes: dict[str, bytes | None]) -> None:
        self.documents = documents
        self.probes = probes

    def still_valid(self) -> bool:
        return all(_digest_of(path) == digest for path, digest in self.probes.items())


def _digest_of(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError:
        return b"unreadable"


def _join(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _library(tree: Tree, lib: str) -> str:
    """A ``libs`` entry (relative to the tree) as a resolved folder inside it."""
    if os.path.isabs(lib):
        raise ManifestError(lib, "a Jsonnet library path must be relative to the source tree")
    real = os.path.realpath(os.path.join(tree.real, lib))
    if not tree.contains(real):
        raise ManifestError(lib, "the Jsonnet library path leads outside the source tree")
    return real


class _Imports:
    """The import callback: tree-confined resolution, with every probe recorded."""

    def __init__(self, tree: Tree, libs: list[str], limit: int) -> None:
        self.tree = tree
        self.search = [*reversed(libs), tree.root_real]
        self.limit = limit
        self.probes: dict[str, bytes | None] = {}
        self.refused = ""

    def __call__(self, directory: str, rel: str) -> tuple[str, bytes]:
        if not rel:
            raise RuntimeError("empty import path")
        if os.path.isabs(rel):
            self.refused = f"import {rel!r} is absolute; imports must stay in the source tree"
            raise RuntimeError(self.refused)
        for base in (directory, *self.search):
            candidate = os.path.normpath(os.path.join(base, rel))
            real = os.path.realpath(candidate)
            if not self.tree.contains(real):
                self.refused = f"import {rel!r} resolves outside the source tree"
                raise RuntimeError(self.refused)
            if os.path.isfile(real):
                data = read_bounded(real, self.tree.rel(real), self.limit)
                self.probes[real] = hashlib.sha256(data).digest()
                return candidate, data
            self.probes[real] = None
        raise RuntimeError(f"cannot find import {rel!r} in the source tree")


def _run(
    tree: Tree, rel: str, path: str, data: bytes, imports: _Imports, options: JsonnetOptions
) -> list[Any]:
    """Evaluate one entry file: its value, an array's items one by one.

    The evaluation runs in a child process, killed after ``options.timeout`` seconds:
    ``max_stack`` does not bound a tail-recursive loop, and a render must never hang a
    sync. The child reports the imports it read (for the cache key) with its answer.
    """
    try:
        import _jsonnet  # noqa: F401  (the child needs it; fail early and clearly here)
    except ImportError as exc:
        raise NotSupportedError(
            f"{rel}: rendering Jsonnet needs the jsonnet package (pip install jsonnet)"
        ) from exc
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(rel, "not UTF-8 text") from None
    imports.refused = ""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_evaluate_in_child, args=(sender, path, source, imports, options), daemon=True
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(options.timeout):
            raise ManifestError(
                rel, f"Jsonnet evaluation took longer than {options.timeout:g} s (timeout)"
            )
        try:
            outcome, payload, refused, probes = receiver.recv()
        except EOFError:
            raise ManifestError(rel, "Jsonnet evaluation crashed (out of memory?)") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    imports.probes.update(probes)
    if outcome == "error":
        if refused:
            raise ManifestError(rel, refused)
        raise ManifestError(rel, _message(payload, tree, options))
    if len(payload) > options.max_output_bytes:
        raise ManifestError(
            rel, f"Jsonnet output is {len(payload)} bytes, over {options.max_output_bytes} (limit)"
        )
    result = json.loads(payload)
    return result if isinstance(result, list) else [result]


def _evaluate_in_child(
    sender: Any, path: str, source: str, imports: _Imports, options: JsonnetOptions
) -> None:
    """The child process: evaluate, then send (outcome, text, refused, probes) and exit."""
    import _jsonnet

    try:
        text = _jsonnet.evaluate_snippet(
            path,
            source,
            max_stack=options.max_stack,
            ext_vars=options.ext_vars,
            ext_codes=options.ext_code,
            tla_vars=options.tlas,
            tla_codes=options.tla_code,
            import_callback=imports,
        )
    except RuntimeError as exc:
        sender.send(("error", str(exc), imports.refused, imports.probes))
    else:
        if len(text) > options.max_output_bytes:  # do not ship what will be refused
            text = text[: options.max_output_bytes + 1]
        sender.send(("ok", text, "", imports.probes))
    sender.close()


def _message(text: str, tree: Tree, options: JsonnetOptions) -> str:
    """Jsonnet's error and the top of its trace: relative paths, option values hidden."""
    text = redact(tree.scrub(text), options.secrets())  # before a value's lines are joined
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    message = "; ".join(line.strip() for line in lines[:_MAX_MESSAGE_LINES])
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return f"Jsonnet evaluation failed: {message}"
