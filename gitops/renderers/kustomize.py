"""The kustomize renderer: ``kustomize build`` (or ``kubectl kustomize``) of one folder.

The folder to build (``root``) and the folder the build may read (``context.tree``, the
whole fetched tree) differ: an overlay ``overlays/prod`` uses ``../../base``. Before
kustomize runs, :mod:`gitops.renderers.kustomize_graph` checks every kustomization it
will read, so nothing outside the tree is read and no remote base is fetched unless
``allow_remote`` says so. kustomize runs with ``--load-restrictor
LoadRestrictionsRootOnly``, a timeout, no plugins and no Helm, in a scratch working
folder (it never writes into the artifact). Its output goes through the same
validation as plain YAML; the result is what ``kubectl kustomize DIR`` prints.

A build is a pure function of the files below the kustomizations it reaches, so it is
cached by their content digest: an unchanged tree does not run kustomize again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field

from gitops.errors import ManifestError, NotSupportedError
from gitops.manifests import DEFAULT_LIMITS, Document, Limits, parse_documents
from gitops.model import RenderContext, Resource
from gitops.options import PluginOptions
from gitops.renderers._options import context_options, validate
from gitops.renderers._paths import Tree
from gitops.renderers.base import Renderer
from gitops.renderers.kustomize_errors import build_error
from gitops.renderers.kustomize_graph import KustomizeGraph, walk_kustomization
from gitops.renderers.substitute import check_substituted

__all__ = ["KustomizeOptions", "KustomizeRenderer", "kustomize_command", "kustomize_version"]

_log = logging.getLogger(__name__)
_CACHE_SIZE = 16
#: The oldest kustomize this renderer drives (``--load-restrictor``, ``components``).
MIN_VERSION = (4, 0)
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?")


class KustomizeOptions(PluginOptions):
    """Options of the kustomize renderer (constructor keywords or ``options["kustomize"]``)."""

    timeout: float = Field(default=120.0, gt=0, description="seconds one build may take")
    allow_remote: bool = Field(
        default=False,
        validation_alias=AliasChoices("allow_remote", "allowRemote", "allow-remote"),
        description="let kustomize fetch remote bases (Git URLs, HTTP files)",
    )


def kustomize_command() -> list[str] | None:
    """``[kustomize, "build"]`` when on PATH, else ``[kubectl, "kustomize"]``, else None."""
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build"]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    return None


@functools.lru_cache(maxsize=8)
def kustomize_version(command: tuple[str, ...]) -> tuple[int, int] | None:
    """``(major, minor)`` of the kustomize ``command`` runs (built into kubectl or not).

    None when it cannot be told (a kubectl too old to report it, or one that fails).
    """
    if command[1:] == ("build",):
        args = [command[0], "version"]
    else:
        args = [command[0], "version", "--client", "-o", "json"]
    try:
        done = subprocess.run(args, capture_output=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.decode("utf-8", "replace")
    if command[1:] != ("build",):
        try:
            text = str(json.loads(text).get("kustomizeVersion") or "")
        except (ValueError, AttributeError):
            return None
    found = _VERSION.search(text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _usable_command() -> tuple[list[str] | None, str]:
    """The kustomize command to run, or None and why there is none."""
    command = kustomize_command()
    if command is None:
        return None, "neither kustomize nor kubectl is on PATH"
    version = kustomize_version(tuple(command))
    if version is None or version < MIN_VERSION:
        shown = "an unknown version" if version is None else f"v{version[0]}.{version[1]}"
        return None, (
            f"{' '.join(command)} runs kustomize {shown}; kustomize v4 or later is needed "
            "(kubectl 1.21+, or a kustomize binary on PATH)"
        )
    return command, ""


class KustomizeRenderer(Renderer):
    """Build the kustomization in ``root`` with kustomize; resources as kustomize prints them.

    Keywords are :class:`KustomizeOptions` defaults; ``context.options["kustomize"]``
    overrides them per render. ``limits`` bounds the output as a whole (bytes,
    documents, resources). Errors name the kustomization file, relative to the tree.
    """

    name: ClassVar[str] = "kustomize"
    Options: ClassVar[type[KustomizeOptions]] = KustomizeOptions
    #: applies ``context.variables`` itself, before validating (``namespace: ${NS}``)
    substitutes: ClassVar[bool] = True

    def __init__(self, limits: Limits | None = None, **options: object) -> None:
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.options = validate(KustomizeOptions, self.name, options)
        self._cache: OrderedDict[tuple[object, ...], tuple[Document, ...]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        command, why = _usable_command()
        return command is not None, why

    def render(self, root: Path, context: RenderContext | None = None) -> list[Resource]:
        """The resources the kustomization in ``root`` builds, validated, as declared.

        ``context.variables``, when given, are substituted into the build's output before
        it is validated (:func:`~gitops.renderers.substitute.check_substituted`). Raises
        ManifestError naming the kustomization file (bad reference, remote base, build
        failure, timeout, invalid output); NotSupportedError without kustomize.
        """
        tree = Tree(root, context)
        options = context_options(KustomizeOptions, self.name, self.options, context)
        graph = walk_kustomization(tree, allow_remote=options.allow_remote)
        command, why = _usable_command()
        if command is None:
            raise NotSupportedError(f"{graph.root_file}: cannot build a kustomization: {why}")
        # Remote content can change under the same tree: only local builds are cached.
        key = None if graph.remote else (
            tree.rel(tree.root_real), tree.digest(graph.folders), tuple(command),
            kustomize_version(tuple(command)),
        )
        documents: tuple[Document, ...] | None = None
        if key is not None:
            with self._lock:
                documents = self._cache.get(key)
                if documents is not None:
                    self._cache.move_to_end(key)
        if documents is None:
            documents = tuple(self._build(command, tree, graph, options))
            if key is not None:
                with self._lock:
                    self._cache[key] = documents
                    while len(self._cache) > _CACHE_SIZE:
                        self._cache.popitem(last=False)
        variables = context.variables if context is not None else {}
        return check_substituted(documents, variables, limits=self.limits)

    def _build(
        self, command: list[str], tree: Tree, graph: KustomizeGraph, options: KustomizeOptions
    ) -> list[Document]:
        """Run kustomize; its output parsed (not yet validated)."""
        args = [*command, tree.root_real, "--load-restrictor", "LoadRestrictionsRootOnly"]
        with tempfile.TemporaryDirectory(prefix="gitops-kustomize-") as scratch:
            returncode, stdout, stderr = _run(
                args, scratch, options.timeout, graph.root_file, self.limits.max_total_bytes
            )
        if returncode != 0:
            raise build_error(stderr, graph.root_file, tree, graph)
        for line in stderr.decode("utf-8", "replace").splitlines():
            if line.startswith("# Warning:"):  # kustomize's deprecation notices
                _log.debug("%s: kustomize: %s", graph.root_file, line[2:300])
        # One output stream: it is bounded by the total limits, not the per-file ones.
        output_limits = dataclasses.replace(
            self.limits,
            max_file_bytes=self.limits.max_total_bytes,
            max_documents_per_file=self.limits.max_resources,
        )
        return parse_documents(stdout, graph.root_file, limits=output_limits)

    def __repr__(self) -> str:
        options = self.options
        return f"{type(self).__name__}(timeout={options.timeout:g}, allow_remote={options.allow_remote})"


def _run(
    args: list[str], cwd: str, timeout: float, where: str, max_output: int
) -> tuple[int, bytes, bytes]:
    """Run ``args`` in its own process group, its output into files in ``cwd``.

    The whole group is killed (``kubectl`` may be a dispatcher whose child would
    otherwise live on) on timeout, and as soon as the output grows past ``max_output``
    bytes: a hostile overlay can multiply its objects, and nothing is read into memory
    before it is known to be within the limit.
    """
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    out_path, err_path = os.path.join(cwd, ".stdout"), os.path.join(cwd, ".stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            process = subprocess.Popen(
                args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            raise NotSupportedError(f"{where}: cannot run {args[0]}: {exc.strerror or exc}") \
                from exc
        deadline = time.monotonic() + timeout
        problem = ""
        while True:
            try:
                process.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if os.fstat(out.fileno()).st_size > max_output:
                problem = f"kustomize output exceeds {max_output} bytes (limit)"
            elif time.monotonic() > deadline:
                problem = f"kustomize build timed out after {timeout:g} s"
            if problem:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise ManifestError(where, problem)
    if os.path.getsize(out_path) > max_output:
        raise ManifestError(where, f"kustomize output exceeds {max_output} bytes (limit)")
    with open(out_path, "rb") as out, open(err_path, "rb") as err:
        stdout = out.read()
        err.seek(max(0, os.fstat(err.fileno()).st_size - (64 << 10)))
        stderr = err.read()  # the tail: where kustomize says what went wrong
    return process.returncode, stdout, stderr
