"""The generator plugin contract: a config mapping and a context in, parameter sets out.

A generator is a class registered in the entry-point group ``gitops.generators`` (the
built-ins in gitops' own ``pyproject.toml``), looked up by the name written in
``spec.generators`` (``- list: {...}``). It is instantiated without arguments and asked
:meth:`Generator.generate` ``(config, context)``: the mapping under its name and a
:class:`GeneratorContext`, and returns a list of parameter sets (mappings; nested
mappings are flattened to dotted names). What it read at a revision (a Git commit) it
reports with :meth:`GeneratorContext.record_revision`; what is worth keeping between
evaluations (an open source, a folder listing) it keeps in :attr:`GeneratorContext.cache`.
A generator never applies anything and never opens an application's target.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gitops.errors import InputError

__all__ = [
    "ConfigModel",
    "Generator",
    "GeneratorCache",
    "GeneratorContext",
    "ParameterSet",
]

#: one parameter set as a generator returns it (nested mappings allowed)
ParameterSet = dict[str, Any]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


class ConfigModel(BaseModel):
    """Base of a generator's config model: unknown fields refused, camelCase accepted."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class GeneratorCache:
    """What generators keep between evaluations, by key; thread-safe, closed with the context.

    ``get(key, make)`` returns the value kept under ``key``, making it first when absent.
    Values with a ``close()`` method are closed by :meth:`close`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Any, Any] = {}

    def get(self, key: Any, make: Callable[[], _T]) -> _T:
        with self._lock:
            if key in self._values:
                value: _T = self._values[key]
                return value
        made = make()
        with self._lock:
            value = self._values.setdefault(key, made)
        if value is not made:
            _close(made)
        return value

    def put(self, key: Any, value: Any) -> None:
        """Keep ``value`` under ``key`` (replacing, not closing, what was there)."""
        with self._lock:
            self._values[key] = value

    def peek(self, key: Any) -> Any:
        """The value under ``key``, or None."""
        with self._lock:
            return self._values.get(key)

    def close(self) -> None:
        """Close every value that can be closed, and forget everything. Idempotent."""
        with self._lock:
            values, self._values = list(self._values.values()), {}
        for value in values:
            _close(value)


def _close(value: Any) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()


@dataclass
class GeneratorContext:
    """What a generator may use: where errors point, a cache, and the revisions it read.

    One context may be kept across evaluations (a controller re-evaluating a set every
    interval): :meth:`for_set` gives the per-evaluation view that :func:`~gitops.appsets.
    generate.generate` passes to generators (same cache, fresh revisions).
    """

    where: str = "ApplicationSet"
    cache: GeneratorCache = field(default_factory=GeneratorCache)
    revisions: dict[str, str] = field(default_factory=dict)
    #: ``spec.generators[0].matrix.generators[1]``: the generator being evaluated
    field_path: str = "spec.generators"

    def for_set(self, key: str) -> GeneratorContext:
        """A view for evaluating ApplicationSet ``key``: same cache, no revisions yet."""
        return GeneratorContext(where=f"ApplicationSet {key}", cache=self.cache)

    def at(self, field_path: str) -> GeneratorContext:
        """The same context, errors pointing at ``field_path`` (revisions shared)."""
        return GeneratorContext(where=self.where, cache=self.cache, revisions=self.revisions,
                                field_path=field_path)

    def record_revision(self, what: str, revision: str) -> None:
        """Report that ``what`` (a credential-free source URL) was read at ``revision``."""
        self.revisions[what] = revision

    def error(self, message: str) -> InputError:
        """An InputError naming the ApplicationSet and the generator's field."""
        return InputError(f"{self.where}: {self.field_path}: {message}")

    def validate(self, model: type[_M], config: Mapping[str, Any]) -> _M:
        """``config`` as ``model``; an InputError naming each wrong field (never a value)."""
        if not isinstance(config, Mapping):
            raise self.error("the generator's config must be a mapping")
        from gitops.apps.load import _problems as problems  # one error format for documents

        try:
            return model.model_validate(dict(config))
        except ValidationError as exc:
            raise self.error(problems(exc)) from None

    def generate(self, entry: Mapping[str, Any], field_path: str) -> list[ParameterSet]:
        """Evaluate a nested generator entry ``{name: config}`` (for ``matrix``, ``merge``)."""
        from gitops.appsets.generate import run_generator  # the one lookup path

        return run_generator(entry, self.at(field_path))


class Generator(ABC):
    """Base class of every generator plugin; only :meth:`generate` is required."""

    #: the name written in ``spec.generators`` (the entry-point name)
    name: ClassVar[str] = ""

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Whether the generator can run here, and if not, why (``gitops plugins``)."""
        return True, ""

    @abstractmethod
    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        """The parameter sets ``config`` gives, in a stable order.

        Raise ``context.error(...)`` (an InputError naming the set and the field) for a
        wrong config; source errors (a repository that cannot be read) as they come.
        """
