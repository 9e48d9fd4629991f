"""Renderer options: one pydantic model per renderer, from its constructor and the context.

A renderer's keyword arguments set its defaults; ``RenderContext.options[<name>]`` (a
mapping, e.g. ``{"jsonnet": {"ext_vars": {...}}}``) overrides them field by field for
one render. Unknown names are errors naming the renderer and the option, never the
value (an option may hold a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from gitops.errors import InputError
from gitops.model import RenderContext
from gitops.options import PluginOptions

__all__ = ["context_options", "validate"]

OptionsT = TypeVar("OptionsT", bound=PluginOptions)


def validate(model: type[OptionsT], name: str, values: Mapping[str, Any]) -> OptionsT:
    """``values`` as ``model``; InputError naming the renderer and each bad option."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"option {'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"renderer {name!r}: {problems}") from None


def context_options(
    model: type[OptionsT], name: str, defaults: OptionsT, context: RenderContext | None
) -> OptionsT:
    """``defaults`` with the fields ``context.options[name]`` sets replaced."""
    section = context.options.get(name) if context is not None else None
    if section is None:
        return defaults
    if not isinstance(section, Mapping):
        raise InputError(f"renderer {name!r}: options must be a mapping")
    given = validate(model, name, section)
    return defaults.model_copy(update={field: getattr(given, field) for field in given.model_fields_set})
