"""Loading declarations: YAML files (many documents each) and Kubernetes objects.

A file given to ``gitops run -f`` holds ``gitops.dev/v1alpha1`` documents: ``Application``
and the other kinds of :data:`DECLARED_KINDS` (image automation, application sets). Any
other document (another group, kind or version) is an error naming the file and the
document, as is the same kind and ``namespace/name`` declared twice. Errors name fields,
never values: substitutions and URLs may hold secrets.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from gitops.apps.spec import API_VERSION, GROUP, KIND, VERSION, Application
from gitops.errors import InputError, ManifestError
from gitops.manifests import Document, parse_documents

__all__ = [
    "DECLARED_KINDS",
    "Declaration",
    "Declarations",
    "check_dependencies",
    "load_applications",
    "load_declarations",
    "validate_object",
]

#: the ``gitops.dev`` kinds besides Application a file may declare: kind -> "module:Model",
#: imported when first met. Each model validates the whole document (pydantic) and has a
#: ``key`` property ("namespace/name").
DECLARED_KINDS: dict[str, str] = {
    "ImagePolicy": "gitops.images.spec:ImagePolicy",
    "ImageUpdateAutomation": "gitops.images.spec:ImageUpdateAutomation",
    "ApplicationSet": "gitops.appsets.spec:ApplicationSet",
}


class Declaration(Protocol):
    """What a model of :data:`DECLARED_KINDS` offers besides pydantic validation."""

    @property
    def key(self) -> str:
        """``namespace/name``."""
        ...


@dataclass(frozen=True)
class Declarations:
    """Everything a set of files declares: applications, and the other kinds by kind."""

    applications: tuple[Application, ...] = ()
    others: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def of(self, kind: str) -> tuple[Any, ...]:
        """The documents of ``kind`` (one of :data:`DECLARED_KINDS`), in file order."""
        return tuple(self.others.get(kind, ()))

    def __bool__(self) -> bool:
        return bool(self.applications) or any(self.others.values())

    def __len__(self) -> int:
        return len(self.applications) + sum(len(v) for v in self.others.values())

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


def _kind_problem(manifest: Mapping[str, Any], kinds: Iterable[str] = (KIND,)) -> str | None:
    """Why ``manifest`` is not a document of one of ``kinds``, or None when it is one."""
    kinds = tuple(kinds)
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return (f"apiVersion and kind are required (apiVersion: {API_VERSION}, "
                f"kind: {' | '.join(kinds)})")
    group, _, version = api_version.rpartition("/")
    if group != GROUP:
        return (f"not a {GROUP} document: only {', '.join(kinds)} documents of {API_VERSION} "
                "may be given here")
    if kind not in kinds:
        return f"kind {kind} of {GROUP} is not supported (only {', '.join(kinds)})"
    if version != VERSION:
        return f"apiVersion {api_version} is not supported (use {API_VERSION})"
    return None


def _model(kind: str) -> type[BaseModel]:
    module, _, name = DECLARED_KINDS[kind].partition(":")
    model = getattr(importlib.import_module(module), name)
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def _validate_declaration(manifest: Mapping[str, Any]) -> Any:
    """The model of any declared kind, or the one-line reason the document is invalid."""
    problem = _kind_problem(manifest, (KIND, *DECLARED_KINDS))
    if problem is not None:
        return problem
    kind = manifest["kind"]
    if kind == KIND:
        return _validate(manifest)
    try:
        return _model(kind).model_validate(dict(manifest))
    except ValidationError as exc:
        return _problems(exc)


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

    The files may also declare the other kinds of :data:`DECLARED_KINDS` (validated, not
    returned: :func:`load_declarations` returns them). Raises
    :class:`~gitops.errors.ManifestError` naming the file and document index for an
    unreadable file, an invalid document, or a ``namespace/name`` declared twice (naming
    both places); :class:`InputError` for dependency cycles.
    """
    return list(load_declarations(*paths).applications)


def load_declarations(*paths: str | os.PathLike[str]) -> Declarations:
    """Every document the files declare, Applications and :data:`DECLARED_KINDS`; errors
    as :func:`load_applications`."""
    apps: list[Application] = []
    others: dict[str, list[Any]] = {}
    seen: dict[tuple[str, str], Document] = {}
    for path in paths:
        shown = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ManifestError(shown, f"cannot read: {exc.strerror or exc}") from None
        for doc in parse_documents(data, shown):
            result = _validate_declaration(doc.manifest)
            if isinstance(result, str):
                raise doc.error(result)
            kind = doc.manifest["kind"]
            first = seen.get((kind, result.key))
            if first is not None:
                what = "application" if kind == KIND else kind
                raise doc.error(f"{what} {result.key} is already declared in {first.where}")
            seen[kind, result.key] = doc
            if kind == KIND:
                apps.append(result)
            else:
                others.setdefault(kind, []).append(result)
    check_dependencies(apps)
    return Declarations(tuple(apps), {kind: tuple(v) for kind, v in others.items()})


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
