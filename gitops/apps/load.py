"""Loading Application documents: YAML files (many documents each) and Kubernetes objects.

A file given to ``gitops run -f`` holds ``Application`` documents only: any other
document (another group, another ``gitops.dev`` kind or version) is an error naming the
file and the document, as is the same ``namespace/name`` declared twice. Errors name
fields, never values: substitutions and URLs may hold secrets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gitops.apps.spec import API_VERSION, GROUP, KIND, VERSION, Application
from gitops.errors import InputError, ManifestError
from gitops.manifests import Document, parse_documents

__all__ = ["check_dependencies", "load_applications", "validate_object"]

#: metadata the API server sets, dropped by Application.from_object
SERVER_METADATA = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "selfLink", "ownerReferences",
    "finalizers", "generateName",
})


def _problems(exc: ValidationError) -> str:
    """Each problem as ``field.path: message``; pydantic's messages never quote the input."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "literal_error":
            message = message.replace("Input should be", "must be")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _kind_problem(manifest: Mapping[str, Any]) -> str | None:
    """Why ``manifest`` is not an Application document, or None when it says it is one."""
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return "apiVersion and kind are required (apiVersion: gitops.dev/v1alpha1, kind: Application)"
    group, _, version = api_version.rpartition("/")
    if group != GROUP:
        return f"not a {GROUP} document: only {KIND} documents of {API_VERSION} may be given here"
    if kind != KIND:
        return f"kind {kind} of {GROUP} is not supported (only {KIND})"
    if version != VERSION:
        return f"apiVersion {api_version} is not supported (use {API_VERSION})"
    return None


def _validate(manifest: Mapping[str, Any]) -> Application | str:
    """The application, or the one-line reason it is invalid."""
    problem = _kind_problem(manifest)
    if problem is not None:
        return problem
    try:
        return Application.model_validate(dict(manifest))
    except ValidationError as exc:
        return _problems(exc)


def validate_object(manifest: Mapping[str, Any]) -> Application:
    """:meth:`Application.from_object`: status and server-set metadata ignored; InputError."""
    if not isinstance(manifest, Mapping):
        raise InputError("an Application object must be a mapping")
    data = {k: v for k, v in manifest.items() if k != "status"}
    metadata = data.get("metadata")
    if isinstance(metadata, Mapping):
        data["metadata"] = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
        where = f"Application {metadata.get('namespace', 'default')}/{metadata.get('name', '?')}"
    else:
        where = "Application"
    result = _validate(data)
    if isinstance(result, str):
        raise InputError(f"{where}: {result}")
    return result


def load_applications(*paths: str | os.PathLike[str]) -> list[Application]:
    """Every Application the YAML (or ``.json``) files declare, in file and document order.

    Raises :class:`~gitops.errors.ManifestError` naming the file and document index for an
    unreadable file, a document that is not a valid Application, or a ``namespace/name``
    declared twice (naming both places); :class:`InputError` for dependency cycles.
    """
    apps: list[Application] = []
    seen: dict[str, Document] = {}
    for path in paths:
        shown = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ManifestError(shown, f"cannot read: {exc.strerror or exc}") from None
        for doc in parse_documents(data, shown):
            result = _validate(doc.manifest)
            if isinstance(result, str):
                raise doc.error(result)
            first = seen.get(result.key)
            if first is not None:
                raise doc.error(f"application {result.key} is already declared in {first.where}")
            seen[result.key] = doc
            apps.append(result)
    check_dependencies(apps)
    return apps


def check_dependencies(apps: Iterable[Application]) -> None:
    """Refuse an application that depends on itself, directly or through others (InputError).

    A dependency on an application not among ``apps`` is allowed: it may be declared
    elsewhere (another file, the cluster); the operator waits for it to be Ready.
    """
    graph = {app.key: app.dependencies for app in apps}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(key: str, path: list[str]) -> None:
        state[key] = 1
        for dep in graph.get(key, ()):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep] if dep in path else [key, dep]
                raise InputError(f"dependsOn cycle: {' -> '.join(cycle)}")
            if state.get(dep) is None and dep in graph:
                visit(dep, [*path, dep])
        state[key] = 2

    for key in graph:
        if key not in state:
            visit(key, [key])
