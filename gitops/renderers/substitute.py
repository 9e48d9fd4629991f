"""Flux ``postBuild`` variable substitution over rendered resources.

Flux's kustomize-controller runs `envsubst <https://github.com/fluxcd/pkg/tree/main/envsubst>`_
(a fork of drone/envsubst) in strict mode over the YAML text of each object kustomize
built, then reads the text back. :func:`substitute` does the same per string of each
object, with the same results:

* ``${VAR}``; ``${VAR:=default}``, ``${VAR=default}`` and ``${VAR:-default}`` (the default
  when VAR is unset *or empty*, as envsubst does; defaults may nest ``${OTHER}``);
  ``${VAR:offset}``, ``${VAR:offset:length}``; ``${VAR/from/to}``, ``${VAR//from/to}``,
  ``${VAR/#from/to}``, ``${VAR/%from/to}``; ``${#VAR}``; ``${VAR^}``, ``${VAR^^}``,
  ``${VAR,}``, ``${VAR,,}``. Pattern trims (``#``, ``%``) and ``:?``/``:+`` are refused.
* ``$$`` is a literal ``$`` (so ``$${VAR}`` gives ``${VAR}``); a ``$`` not followed by
  ``{`` is kept.
* Strict: a variable that is not set, used without a default, is an error naming the
  file, the object, the field and the variable.
* An object labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled``
  is left alone. Newlines are removed from values, as Flux does.
* Types follow YAML, as they do after Flux re-reads its text: a string that kustomize
  writes as a plain scalar (``replicas: ${REPLICAS}``, quoted or not in the source:
  kustomize drops needless quotes) is read again once substituted, so ``"3"`` becomes
  the number 3 and ``${quote}3${quote}`` the string ``"3"``; strings written quoted or as
  blocks (``a: b``, multi-line scripts) stay strings. Keys stay strings.

It never puts a variable's value into an error message, and never mutates its input:
an object that changes is copied along the changed path and validated again.
"""

from __future__ import annotations

import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from yaml.emitter import Emitter
from yaml.resolver import Resolver

from gitops.errors import InputError, ManifestError
from gitops.manifests import DEFAULT_LIMITS, Document, Limits, check_documents, parse_manifests
from gitops.model import Resource
from gitops.urls import redact

__all__ = [
    "SUBSTITUTE_KEY",
    "check_substituted",
    "substitute",
    "substitute_documents",
    "substitute_string",
]

#: Label or annotation that turns substitution off for one object (value ``disabled``).
SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"

_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
_ATOI = re.compile(r"^[+-]?[0-9]+$")
_STR_TAG = "tag:yaml.org,2002:str"
_DEFAULT_OPS = ("=", ":=", ":-")
#: How deep ``${A:=${B:=...}}`` may nest (deeper would exhaust Python's stack).
_MAX_NESTING = 32


class _Failure(Exception):
    """A substitution problem inside one string; the caller adds where it happened."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def substitute(resources: Iterable[Resource], variables: Mapping[str, str]) -> list[Resource]:
    """The resources with ``${VAR}`` expressions replaced from ``variables``, in order.

    For resources a renderer already validated (one that does not substitute itself,
    see :func:`check_substituted`). Unchanged resources are returned as the same
    objects. Raises InputError for an invalid variable name or a non-string value
    (naming the variable, never its value) and ManifestError (via the resource's
    origin) for an undefined variable without a default, a malformed expression, or an
    object that is invalid once substituted.
    """
    values = _checked_variables(variables)
    out: list[Resource] = []
    for res in resources:
        document = _document_of(res)
        changed = _substituted(document, values)
        if changed is document:
            out.append(res)
            continue
        (checked,) = _checked([changed], values, DEFAULT_LIMITS)
        out.append(Resource(checked.key, checked.api_version, checked.manifest, res.origin))
    return out


def substitute_documents(
    documents: Iterable[Document], variables: Mapping[str, str]
) -> list[Document]:
    """Parsed, not yet validated documents with their expressions replaced, in order.

    What a renderer runs between parsing and :func:`~gitops.manifests.check_documents`,
    so that ``namespace: ${NS}`` validates once substituted. Errors as :func:`substitute`.
    """
    values = _checked_variables(variables)
    return [_substituted(document, values) for document in documents]


def check_substituted(
    documents: Iterable[Document],
    variables: Mapping[str, str],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Resource]:
    """Substitute (when ``variables`` is not empty), then validate: Resources as declared.

    A validation message never shows a variable's value (it may quote a name or a
    namespace a value went into).
    """
    if not variables:
        return check_documents(documents, limits=limits)
    values = _checked_variables(variables)
    return _checked([_substituted(d, values) for d in documents], values, limits)


def substitute_string(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with its expressions expanded (strict); ValueError naming the problem."""
    values = _checked_variables(variables)
    try:
        return _expand(text, values.get)
    except _Failure as failure:
        raise ValueError(failure.message) from None


def _checked_variables(variables: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(
                f"variable name {name!r} is invalid: it must match {_NAME.pattern} "
                "(letters, digits and '_', not starting with a digit)"
            )
        if not isinstance(value, str):
            raise InputError(f"variable {name}: the value must be a string")
        values[name] = value.replace("\n", "")
    return values


def _document_of(res: Resource) -> Document:
    """The Document a resource came from, as its origin names it."""
    path, sep, rest = res.origin.rpartition("#")
    if not sep:
        return Document(res.manifest, res.origin or "<manifests>", 0)
    index, _, item = rest.partition(".")
    return Document(res.manifest, path, int(index) if index.isdigit() else 0, item)


def _disabled(manifest: Any) -> bool:
    metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
    if not isinstance(metadata, dict):
        return False
    return any(
        isinstance(section, dict) and section.get(SUBSTITUTE_KEY) == "disabled"
        for section in (metadata.get("labels"), metadata.get("annotations"))
    )


def _substituted(document: Document, values: dict[str, str]) -> Document:
    """``document`` substituted; the same object when nothing changed or it opted out."""
    manifest = document.manifest
    if _disabled(manifest):
        return document
    try:
        changed = _walk(manifest, values)
    except _Failure as failure:
        field = ".".join(reversed(failure.path)) or "(object)"
        raise document.error(f"{_what(manifest)}{field}: {failure.message}") from None
    if changed is manifest:
        return document
    return Document(changed, document.path, document.index, document.item)


def _what(manifest: Any) -> str:
    """``Kind/name: `` for a message, from the manifest as written (no values inside)."""
    if not isinstance(manifest, dict):
        return ""
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    kind = manifest.get("kind")
    if isinstance(kind, str) and isinstance(name, str):
        return f"{kind}/{name}: "
    return ""


def _checked(documents: list[Document], values: dict[str, str], limits: Limits) -> list[Resource]:
    try:
        return check_documents(documents, limits=limits)
    except ManifestError as exc:
        # The check may quote a name or a namespace, which may now hold a value.
        hidden = redact(exc.reason, [v for v in values.values() if v])
        raise ManifestError(exc.path, f"after substitution: {hidden}", exc.document) from None


# ------------------------------------------------------------------------ the walk


def _walk(node: Any, values: dict[str, str]) -> Any:
    """``node`` with every string substituted; the same object when nothing changed."""
    if isinstance(node, str):
        return _substitute_value(node, values) if "$" in node else node
    if isinstance(node, dict):
        changed: dict[Any, Any] | None = None
        for position, (key, value) in enumerate(node.items()):
            try:
                new_key = _expand(key, values.get) if isinstance(key, str) and "$" in key else key
                new_value = _walk(value, values)
            except _Failure as failure:
                failure.path.append(str(key))
                raise
            if changed is None and (new_key != key or new_value is not value):
                changed = dict(itertools.islice(node.items(), position))
            if changed is not None:
                if new_key != key and (new_key in changed or new_key in node):
                    clash = _Failure("substitution makes two keys of one mapping equal")
                    clash.path.append(str(key))
                    raise clash
                changed[new_key] = new_value
        return node if changed is None else changed
    if isinstance(node, list):
        items: list[Any] | None = None
        for position, value in enumerate(node):
            try:
                new_value = _walk(value, values)
            except _Failure as failure:
                failure.path.append(f"[{position}]")
                raise
            if new_value is not value and items is None:
                items = list(node[:position])
            if items is not None:
                items.append(new_value)
        return node if items is None else items
    return node


def _substitute_value(text: str, values: dict[str, str]) -> Any:
    result = _expand(text, values.get)
    if result == text or not _written_plain(text):
        return result
    return _reread(result)


_RESOLVER = Resolver()


def _written_plain(text: str) -> bool:
    """Whether a YAML emitter writes ``text`` as a plain scalar (kustomize's output style)."""
    if _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) != _STR_TAG:  # type: ignore[no-untyped-call]
        return False
    analysis = Emitter(io.StringIO()).analyze_scalar(text)
    return bool(analysis.allow_block_plain) and not analysis.multiline and not analysis.empty


def _reread(text: str) -> Any:
    """``text`` read back as the value of a block mapping entry, as Flux's re-read does."""
    try:
        (mapping,) = parse_manifests(("k: " + text).encode("utf-8"), "<substitution>")
        return mapping["k"]
    except (ManifestError, ValueError, KeyError):
        raise _Failure("the substituted text is not valid YAML in this place") from None


# ---------------------------------------------------------- envsubst, as Flux runs it

Lookup = Callable[[str], "str | None"]


def _expand(text: str, lookup: Lookup) -> str:
    out: list[str] = []
    position, end = 0, len(text)
    while position < end:
        dollar = text.find("$", position)
        if dollar < 0:
            out.append(text[position:])
            break
        out.append(text[position:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "{":
            value, position = _Parser(text, dollar + 2, lookup).expression()
            out.append(value)
        elif following == "$":
            out.append("$")
            position = dollar + 2
        else:
            out.append("$")
            position = dollar + 1
    return "".join(out)


def _is_ident(char: str) -> bool:
    return char == "_" or char.isalpha() or unicodedata.category(char) == "Nd"


class _Parser:
    """One ``${...}`` expression, from after ``${`` to its ``}``; evaluated as it is read."""

    def __init__(self, text: str, position: int, lookup: Lookup, depth: int = 0) -> None:
        if depth > _MAX_NESTING:
            raise _Failure(f"expressions nest more than {_MAX_NESTING} levels deep")
        self.text = text
        self.pos = position
        self.lookup = lookup
        self.depth = depth

    def peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.text[at] if at < len(self.text) else ""

    def expression(self) -> tuple[str, int]:
        if self.peek() == "#":
            self.pos += 1
            name = self._name()
            self._close()
            return str(len(self._value(name))), self.pos
        name = self._name()
        char = self.peek()
        if char == "}":
            self.pos += 1
            return self._value(name), self.pos
        if char == "=" or (char == ":" and self.peek(1) in ("=", "-", "?", "+")):
            return self._default(name), self.pos
        if char == ":":
            return self._substring(name), self.pos
        if char == "/":
            return self._replace(name), self.pos
        if char in (",", "^"):
            return self._case(name), self.pos
        if char in ("#", "%"):
            raise _Failure(f"${{{name}{char}...}}: pattern trimming is not supported")
        raise _Failure("an expression lacks its closing '}'" if not char else
                       f"${{{name}...}}: unexpected character after the variable name")

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and _is_ident(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise _Failure("an expression has no valid variable name after '${'")
        return self.text[start : self.pos]

    def _value(self, name: str, *, default_op: bool = False) -> str:
        value = self.lookup(name)
        if value is None:
            if default_op:
                return ""
            raise _Failure(f"variable {name} is not set and has no default")
        return value

    def _close(self) -> None:
        if self.peek() != "}":
            raise _Failure("an expression lacks its closing '}'")
        self.pos += 1

    def _param(self, stop: str, *, escapes: bool = False) -> str:
        """Text up to one of ``stop`` (not consumed), nested expressions expanded."""
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise _Failure("an expression lacks its closing '}'")
            if char in stop:
                return "".join(out)
            if char == "$" and self.peek(1) == "{":
                nested = _Parser(self.text, self.pos + 2, self.lookup, self.depth + 1)
                value, self.pos = nested.expression()
                out.append(value)
                continue
            if escapes and (
                (char == "\\" and self.peek(1) in ("/", "\\")) or (char == "$" and self.peek(1) == "$")
            ):
                self.pos += 1
                char = self.peek()
            out.append(char)
            self.pos += 1

    def _default(self, name: str) -> str:
        op = "=" if self.peek() == "=" else ":" + self.peek(1)
        if op not in _DEFAULT_OPS:
            raise _Failure(f"${{{name}{op}...}} is not supported")
        self.pos += len(op)
        fallback = self._param("}")
        self.pos += 1
        value = self._value(name, default_op=True)
        return value if value else fallback

    def _substring(self, name: str) -> str:
        self.pos += 1  # ':'
        offset = self._param(":}")
        length: str | None = None
        if self.peek() == ":":
            self.pos += 1
            length = self._param("}")
        self._close()
        return _substr(self._value(name), offset, length)

    def _replace(self, name: str) -> str:
        self.pos += 1  # '/'
        op = "/"
        if self.peek() in ("/", "#", "%"):
            op += self.peek()
            self.pos += 1
        pattern = self._param("/}", escapes=True)
        if self.peek() != "/":
            raise _Failure(f"${{{name}{op}...}}: the replacement needs a second '/'")
        self.pos += 1
        replacement: str | None = None
        if self.peek() != "}":
            replacement = self._param("}", escapes=True)
        self._close()
        return _replaced(self._value(name), op, pattern, replacement)

    def _case(self, name: str) -> str:
        start = self.pos
        while self.pos - start < 2 and self.peek() in (",", "^"):
            self.pos += 1
        op = self.text[start : self.pos]
        self._close()
        value = self._value(name)
        if not value:
            return value
        if op == "^^":
            return value.upper()
        if op == ",,":
            return value.lower()
        if op == "^":
            return value[0].upper() + value[1:]
        if op == ",":
            return value[0].lower() + value[1:]
        return value  # envsubst treats other combinations as no-ops


def _substr(value: str, offset: str, length: str | None) -> str:
    """bash ``${v:offset:length}`` as envsubst computes it (an unparsable number: ``v``)."""
    if not _ATOI.match(offset):
        return value
    start = int(offset)
    if start < 0:
        start = max(len(value) + start, 0)
    if length is None:
        return value[start:] if start < len(value) else ""
    if not _ATOI.match(length):
        return value
    count = int(length)
    if count < 0:
        stop = len(value) + count
        return value[start:stop] if stop >= start else ""
    if start + count >= len(value):
        return value[start:] if start < len(value) else ""
    return value[start : start + count]


def _replaced(value: str, op: str, pattern: str, replacement: str | None) -> str:
    if op in ("/#", "/%"):
        if replacement is None:
            return value
        if op == "/#":
            return replacement + value[len(pattern) :] if value.startswith(pattern) else value
        return value[: len(value) - len(pattern)] + replacement if value.endswith(pattern) else value
    new = replacement or ""
    if op == "//":
        return value.replace(pattern, new)
    return value.replace(pattern, new, 1)
