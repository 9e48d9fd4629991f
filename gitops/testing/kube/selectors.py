"""Label and field selectors with the grammar of ``k8s.io/apimachinery/pkg/labels``.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
``!k``, ``k>1``, ``k<1``, joined by commas (AND). Field selectors: ``metadata.name`` and
``metadata.namespace`` with ``=``, ``==``, ``!=``. A malformed selector raises a 400
:class:`~gitops.testing.kube.status.StatusError` worded like the real server's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gitops.testing.kube.status import StatusError, bad_request

__all__ = ["FieldGetter", "Matcher", "parse_field_selector", "parse_label_selector"]

Matcher = Callable[[Mapping[str, Any]], bool]

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s!=<>,()]+)\s*"
    r"(?:(?P<op>==|=|!=|<|>|\bnotin\b|\bin\b)\s*(?P<rest>.*?))?\s*$",
    re.DOTALL,
)


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(selector):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return parts


def _bad_label(term: str, why: str) -> StatusError:
    return bad_request(f"unable to parse requirement: {why}" if why else f"found '{term}', expected: identifier")


def _check_key(key: str) -> None:
    if len(key) > 317 or not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: <nil>: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: values[0][{value}]: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")


def _term(term: str) -> Matcher:
    m = _TERM.match(term)
    if not m:
        raise _bad_label(term, "")
    neg, key, op, rest = m.group("neg"), m.group("key"), m.group("op"), m.group("rest")
    _check_key(key)
    if neg:
        if op:
            raise _bad_label(term, "")
        return lambda labels: key not in labels
    if not op:
        return lambda labels: key in labels
    if op in ("in", "notin"):
        rest = rest.strip()
        if not (rest.startswith("(") and rest.endswith(")")):
            raise bad_request(f"found '{rest[:1] or 'EOS'}', expected: '('")
        values = {v.strip() for v in rest[1:-1].split(",")}
        for v in values:
            _check_value(v)
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    value = rest.strip()
    if op in ("<", ">"):
        try:
            bound = int(value)
        except ValueError:
            raise bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value}") from None

        def compare(labels: Mapping[str, Any]) -> bool:
            try:
                have = int(labels[key])
            except (KeyError, ValueError):
                return False
            return have > bound if op == ">" else have < bound

        return compare
    _check_value(value)
    if op == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: labels.get(key) == value


def parse_label_selector(selector: str | None) -> Matcher:
    """A predicate over an object's labels; an empty selector matches everything."""
    if not selector or not selector.strip():
        return lambda labels: True
    terms = [_term(part) for part in _split(selector)]
    return lambda labels: all(t(labels) for t in terms)


_FIELD = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.\-]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*?)\s*$")
#: a field label -> how to read it from a stored object
FieldGetter = Callable[[dict[str, Any]], str]
_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": lambda obj: str((obj.get("metadata") or {}).get("name") or ""),
    "metadata.namespace": lambda obj: str((obj.get("metadata") or {}).get("namespace") or ""),
}


def parse_field_selector(selector: str | None, extra: Mapping[str, FieldGetter] | None = None) -> Callable[[dict[str, Any]], bool]:
    """A predicate over a whole object: ``metadata.name``/``metadata.namespace``, plus the
    labels of ``extra`` (the kind's own, such as ``involvedObject.name`` for Events)."""
    if not selector or not selector.strip():
        return lambda obj: True
    known = {**_FIELDS, **(extra or {})}
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for part in selector.split(","):
        m = _FIELD.match(part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        key, op, value = m.group("key"), m.group("op"), m.group("value")
        if key not in known:
            raise bad_request(f'field label not supported: {key}')

        def test(obj: dict[str, Any], read: FieldGetter = known[key], op: str = op, value: str = value) -> bool:
            have = read(obj)
            return have == value if op != "!=" else have != value

        tests.append(test)
    return lambda obj: all(t(obj) for t in tests)
