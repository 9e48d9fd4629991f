"""The JSONPath subset a CRD's ``additionalPrinterColumns`` use, evaluated like client-go's.

A real server evaluates each column's ``jsonPath`` with ``k8s.io/client-go/util/jsonpath``
(missing keys allowed) and shows the first result. The emulator supports what printer
columns use in practice:

- fields: ``.status.sync``, ``.metadata.labels.app\\.kubernetes\\.io/name`` (``\\.``
  escapes a dot), ``['key']``;
- list items: ``[0]``, ``[-1]``, ``[*]``, and ``.*`` for every value of a map;
- filters: ``[?(@.type=="Ready")]``, with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``
  against a string, number or boolean literal, or ``[?(@.field)]`` (the field exists).

Anything else (slices, unions, recursive descent, functions) is refused by :func:`compile_path`
with a :class:`JsonPathError` that names the expression. Nothing here knows about tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonPath", "JsonPathError", "compile_path"]

#: what the emulator supports, for error messages
SUPPORTED = '.a.b, .a[0].b, .a[*].b, .a.*, [\'a.b\'], .a[?(@.type=="Ready")].b'

_FILTER = re.compile(r"""^@((?:\.[^.=!<>\s\[\]]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$""")
_INDEX = re.compile(r"^-?\d+$")

Step = Callable[[Any], Iterator[Any]]


class JsonPathError(ValueError):
    """A JSONPath the emulator cannot evaluate (not a simple path, or beyond the supported subset)."""


@dataclass(frozen=True)
class JsonPath:
    """A compiled path: :meth:`find` returns every value it reaches, in document order."""

    text: str
    steps: tuple[Step, ...]

    def find(self, data: Any) -> list[Any]:
        values = [data]
        for step in self.steps:
            values = [found for value in values for found in step(value)]
        return values


def compile_path(text: str) -> JsonPath:
    """Compile ``text`` (e.g. ``.status.conditions[?(@.type=="Ready")].status``).

    A surrounding ``{...}`` is accepted, as kubectl writes it. Raises :class:`JsonPathError`.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1].strip()
    if not body.startswith("."):
        raise JsonPathError(f"{text!r}: must be a simple json path starting with .")
    steps: list[Step] = []
    i = 0
    while i < len(body):
        if body[i] == ".":
            i += 1
            if i < len(body) and body[i] == "*":
                steps.append(_every_value)
                i += 1
                continue
            name, i = _field_name(body, i, text)
            if name:
                steps.append(_field(name))
            elif i < len(body) and body[i] == ".":
                raise JsonPathError(f"{text!r}: recursive descent (..) is not supported by the emulator (supported: {SUPPORTED})")
        elif body[i] == "[":
            end = _closing_bracket(body, i, text)
            steps.append(_bracket(body[i + 1:end].strip(), text))
            i = end + 1
        else:
            raise JsonPathError(f"{text!r}: unexpected {body[i]!r} at position {i} (supported: {SUPPORTED})")
    return JsonPath(text, tuple(steps))


def _field_name(body: str, i: int, text: str) -> tuple[str, int]:
    name: list[str] = []
    while i < len(body) and body[i] not in ".[":
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == ".":
            name.append(".")
            i += 2
            continue
        if body[i] in "()@?,:*'\" ":
            raise JsonPathError(f"{text!r}: unexpected {body[i]!r} in a field name (supported: {SUPPORTED})")
        name.append(body[i])
        i += 1
    return "".join(name), i


def _closing_bracket(body: str, start: int, text: str) -> int:
    depth = 0
    quote = ""
    for j in range(start, len(body)):
        char = body[j]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JsonPathError(f"{text!r}: unclosed [")


def _bracket(inner: str, text: str) -> Step:
    if inner == "*":
        return _every_item
    if _INDEX.match(inner):
        return _index(int(inner))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _field(inner[1:-1])
    if inner.startswith("?(") and inner.endswith(")"):
        return _filter(inner[2:-1].strip(), text)
    raise JsonPathError(f"{text!r}: [{inner}] is not supported by the emulator (supported: {SUPPORTED})")


def _field(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, dict) and name in value:
            yield value[name]

    return step


def _every_value(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()


def _every_item(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value


def _index(n: int) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list) and -len(value) <= n < len(value):
            yield value[n]

    return step


def _filter(expression: str, text: str) -> Step:
    m = _FILTER.match(expression)
    if not m:
        raise JsonPathError(f"{text!r}: filter ?({expression}) is not supported by the emulator (supported: {SUPPORTED})")
    left = compile_path(m.group(1))
    op, literal_text = m.group(2), m.group(3)
    literal: Any = None
    if op is not None:
        literal = _literal(literal_text, text)

    def keep(item: Any) -> bool:
        found = left.find(item)
        if op is None:
            return bool(found)
        if not found:
            return False
        return _compare(found[0], op, literal)

    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list):
            yield from (item for item in value if keep(item))

    return step


def _literal(text: str, path: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        raise JsonPathError(f"{path!r}: {text} is not a string, number or boolean literal") from None


def _compare(have: Any, op: str, want: Any) -> bool:
    if op == "==":
        return bool(have == want) and isinstance(have, bool) == isinstance(want, bool)
    if op == "!=":
        return not _compare(have, "==", want)
    numbers = (int, float)
    if isinstance(have, bool) or isinstance(want, bool) or not isinstance(have, numbers) or not isinstance(want, numbers):
        return False
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op]
