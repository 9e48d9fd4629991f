"""``{{param}}`` templating of an ApplicationSet's template, as Argo CD's default (fasttemplate).

A placeholder is ``{{name}}`` or ``{{ name }}``; names may hold dots and brackets
(``path.basename``, ``path[0]``, ``metadata.labels.env``). Every string *value* of the
template is filled in (keys are not: a label or option name is written as is). A
placeholder naming no parameter is an :class:`~gitops.errors.InputError` naming the
ApplicationSet and the field, never a value. Parameters are flat ``name -> str``;
:func:`flatten` turns nested mappings (a ``list`` element ``{labels: {env: a}}``) into
dotted names (``labels.env``). Pure functions: nothing is opened here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gitops.errors import InputError

__all__ = ["PLACEHOLDER", "Parameters", "flatten", "render", "render_string"]

#: a ``{{ name }}`` placeholder; the name is anything but braces and blanks
PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

#: one parameter set: flat names to string values
Parameters = Mapping[str, str]


def _text(value: Any) -> str:
    """A parameter value as text: ``true``/``false`` for booleans, as YAML writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``values`` as flat string parameters; nested mappings become dotted names.

    A nested mapping also stays reachable as a whole only through its leaves
    (``{{labels}}`` of ``{labels: {env: a}}`` is unknown); lists are written as their
    items joined by ``,``.
    """
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(_text(item) for item in value)
        else:
            flat[name] = _text(value)
    return flat


def render_string(text: str, params: Parameters, *, where: str) -> str:
    """``text`` with every placeholder filled in from ``params``.

    Raises InputError ``"{where}: unknown parameter NAME (parameters: ...)"``.
    """
    if "{{" not in text:
        return text

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise InputError(f"{where}: unknown parameter {name!r} (parameters: {known})")
        return params[name]

    return PLACEHOLDER.sub(fill, text)


def render(value: Any, params: Parameters, *, where: str, field: str = "") -> Any:
    """A copy of ``value`` (YAML data) with every string value filled in from ``params``.

    ``where`` names the ApplicationSet in errors, ``field`` the path of ``value``
    (``template.spec``); an error names the exact field (``template.spec.source.url``).
    """
    if isinstance(value, str):
        return render_string(value, params, where=f"{where}: {field}" if field else where)
    if isinstance(value, Mapping):
        return {key: render(item, params, where=where, field=f"{field}.{key}" if field else str(key))
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, params, where=where, field=f"{field}[{index}]")
                for index, item in enumerate(value)]
    return value
