"""Ignore rules in Argo CD's ``ignoreDifferences`` form: which fields, and a desired that keeps them.

A rule (:class:`~gitops.model.IgnoreDifference`) matches objects by group, kind and
optionally name and namespace, and names fields three ways: ``jsonPointers`` (RFC 6901),
``jqPathExpressions`` (jq, evaluated with bounds: :mod:`gitops.differs.jqpaths`) and
``managedFieldsManagers`` (every field those managers own in live). Each is resolved
against desired and against live separately, as Argo CD does.

Ignoring means two things (Argo CD's ``RespectIgnoreDifferences``):

* :func:`respect_ignored` returns desired with each ignored field taken from live, or
  removed when live lacks it; the engine applies that instead of desired, so a sync
  never overwrites a field a rule ignores (an autoscaler's ``spec.replicas``);
* the differ compares that same object with live, so ignored fields are never drift,
  and the patch it reports stays correct against live as it is.

List items are placed by key where the policy knows the list's type, else by position.
An object not created yet is applied as desired (there is nothing live to keep).
This module never mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gitops.differs.jqpaths import check_expression, runner
from gitops.differs.lists import item_key, member
from gitops.differs.managed import manager_fields, owned_paths
from gitops.differs.walk import Lists, copy_json
from gitops.errors import InputError
from gitops.model import DriftMode, DriftPolicy, IgnoreDifference, Resource, ResourceKey

__all__ = [
    "load_ignore_differences",
    "matching_rules",
    "respect",
    "respect_ignored",
    "validate_rules",
]

Tokens = tuple[str | int, ...]


def load_ignore_differences(path: str | Path) -> tuple[IgnoreDifference, ...]:
    """Read a YAML list of ignore rules (Argo CD's ``ignoreDifferences`` entries).

    Raises InputError naming the file, and the entry at fault: unreadable file, invalid
    YAML, not a list, an entry that is not a rule, a bad JSON pointer or jq expression.
    An empty file is no rules.
    """
    where = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read ignore rules: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from exc
    if data is None:
        return ()
    if not isinstance(data, list):
        raise InputError(
            f"{where}: expected a YAML list of ignoreDifferences rules, got {type(data).__name__}"
        )
    rules: list[IgnoreDifference] = []
    for index, entry in enumerate(data):
        try:
            rules.append(IgnoreDifference.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InputError(f"{where}: entry {index}: {problems}") from None
    validate_rules(rules, f"{where}: entry ")
    return tuple(rules)


def validate_rules(rules: Sequence[IgnoreDifference], prefix: str = "ignoreDifferences") -> None:
    """Raise InputError naming ``{prefix}[N]`` (or ``{prefix}N``) for a bad pointer or jq
    expression; compiles each expression once."""
    for index, rule in enumerate(rules):
        name = _name(prefix, index)
        for text in rule.json_pointers:
            _parse_pointer(text, name)
        for expression in rule.jq_path_expressions:
            problem = check_expression(expression)
            if problem is not None:
                raise InputError(f"{name}: jqPathExpressions {expression!r}: {problem}")


def matching_rules(policy: DriftPolicy, key: ResourceKey) -> list[tuple[int, IgnoreDifference]]:
    """``(index in policy.ignore, rule)`` of the rules that apply to ``key``."""
    return [(index, rule) for index, rule in enumerate(policy.ignore) if rule.matches(key)]


def respect_ignored(desired: Resource, live: Resource | None, policy: DriftPolicy) -> Resource:
    """``desired`` with every ignored field taken from ``live`` (or removed if live lacks it).

    What the engine applies instead of ``desired`` (Argo CD's RespectIgnoreDifferences):
    a sync leaves ignored fields as they are live. ``live`` None (not created yet), or
    no rule for the object: ``desired`` itself. Raises InputError for a bad rule.
    """
    if live is None or not policy.ignore:
        return desired
    rules = matching_rules(policy, desired.key)
    if not rules:
        return desired
    lists = None
    if policy.list_types is not None and policy.mode is not DriftMode.EXACT:
        types, key = policy.list_types, desired.key
        lists = lambda names: types.list_type(key.group, key.kind, names)  # noqa: E731
    manifest = respect(desired.manifest, live.manifest, rules, lists)
    if manifest is desired.manifest:
        return desired
    return Resource(desired.key, desired.api_version, manifest, desired.origin)


def respect(
    want: dict[str, Any],
    have: dict[str, Any],
    rules: Sequence[tuple[int, IgnoreDifference]],
    lists: Lists | None,
    notes: Any = None,
) -> dict[str, Any]:
    """``want`` with the fields ``rules`` ignore taken from ``have`` (a copy; ``want`` itself
    when no rule selects anything). ``notes`` (:class:`~gitops.differs.explain.Notes`)
    records each ignored field."""
    drop: list[tuple[Tokens, int, str]] = []
    keep: list[tuple[Tokens, int, str]] = []
    for index, rule in rules:
        name = f"ignoreDifferences[{index}]"
        for text in rule.json_pointers:
            raw = _parse_pointer(text, name)
            for doc, out in ((want, drop), (have, keep)):
                tokens = _resolve(doc, raw)
                if tokens is not None:
                    out.append((tokens, index, f"jsonPointer {text}"))
        if rule.jq_path_expressions:
            found = runner().paths(rule.jq_path_expressions, (want, have), name)
            for expression, (in_want, in_have) in zip(rule.jq_path_expressions, found,
                                                      strict=True):
                how = f"jqPathExpression {expression}"
                drop += [(t, index, how) for t in in_want if _exists(want, t)]
                keep += [(t, index, how) for t in in_have if _exists(have, t)]
        if rule.managed_fields_managers:
            managers = frozenset(rule.managed_fields_managers)
            how = f"managedFieldsManagers {', '.join(rule.managed_fields_managers)}"
            for fields in manager_fields(have, managers):
                drop += [(t, index, how) for t in owned_paths(fields, want)]
                keep += [(t, index, how) for t in owned_paths(fields, have)]
    if not drop and not keep:
        return want
    if notes is not None:  # a field equal on both sides needs no explanation
        for tokens, index, how in keep:
            if _at(want, tokens) != _at(have, tokens):
                notes.ignored(tokens, index, how)
        for tokens, index, how in drop:
            if _at(want, tokens) != _at(have, tokens):
                notes.ignored(tokens, index, how)
    result: dict[str, Any] = copy_json(want)
    removed: list[Tokens] = []
    for tokens, _index, _how in sorted(drop, key=lambda d: _order(d[0]), reverse=True):
        if not any(tokens[: len(done)] == done for done in removed):
            _delete(result, tokens)
            removed.append(tokens)
    placed: set[Tokens] = set()
    for tokens, _index, _how in sorted(keep, key=lambda k: _order(k[0])):
        if tokens not in placed and not any(tokens[: len(p)] == p for p in placed):
            _place(result, have, tokens, lists)
            placed.add(tokens)
    return result


# -- pointers and paths -------------------------------------------------------------------


def _name(prefix: str, index: int) -> str:
    return f"{prefix}{index}" if prefix.endswith(" ") else f"{prefix}[{index}]"


def _parse_pointer(text: str, name: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.startswith("/"):
        raise InputError(f"{name}: jsonPointers {text!r}: a JSON pointer starts with '/'")
    tokens = text[1:].split("/")
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise InputError(f"{name}: jsonPointers {text!r}: '~' must be written '~0'")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def _resolve(doc: Any, raw: tuple[str, ...]) -> Tokens | None:
    """The typed tokens of pointer ``raw`` in ``doc`` (list indices as ints), None if absent."""
    out: list[str | int] = []
    for token in raw:
        if type(doc) is dict and token in doc:
            out.append(token)
            doc = doc[token]
        elif type(doc) is list and token.isascii() and token.isdigit() and int(token) < len(doc):
            out.append(int(token))
            doc = doc[int(token)]
        else:
            return None
    return tuple(out)


def _exists(doc: Any, tokens: Tokens) -> bool:
    for token in tokens:
        if type(doc) is dict and type(token) is str and token in doc:
            doc = doc[token]
            continue
        if type(doc) is not list or not isinstance(token, int) or token >= len(doc):
            return False
        doc = doc[token]
    return bool(tokens)


def _at(doc: Any, tokens: Tokens) -> Any:
    """The value at ``tokens`` in ``doc``, or a fresh object (equal to nothing) if absent."""
    if not _exists(doc, tokens):
        return object()
    for token in tokens:
        doc = doc[token]
    return doc


def _order(tokens: Tokens) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, t) if type(t) is int else (1, t) for t in tokens)


def _delete(tree: Any, tokens: Tokens) -> None:
    for token in tokens[:-1]:
        tree = tree[token]
    del tree[tokens[-1]]


def _place(result: dict[str, Any], live: dict[str, Any], tokens: Tokens, lists: Lists | None) -> None:
    """Put live's value at ``tokens`` (live indices) where it belongs in ``result``.

    Into a keyed list by key (an item replaces the one with its key, or is appended), a
    set by value, any other list at live's index (an item is inserted there). A field
    of an item ``result`` lacks cannot be placed and is skipped.
    """
    node: Any = result
    have: Any = live
    names: tuple[str, ...] = ()
    for depth, token in enumerate(tokens):
        last = depth == len(tokens) - 1
        value = have[token]
        child: Any
        if type(token) is str:
            if type(node) is not dict:
                return
            if last:
                node[token] = copy_json(value)
                return
            child = node.get(token)
            if child is None:
                child = node[token] = {} if type(value) is dict else [] if type(value) is list else None
                if child is None:
                    return
            elif type(child) is not type(value):
                return
            names = (*names, token)
        else:
            if type(node) is not list:
                return
            found = lists(names) if lists is not None else None
            if found is not None and found.type == "map" and type(value) is dict:
                key = item_key(value, found.keys)
                at = next((i for i, item in enumerate(node)
                           if type(item) is dict and item_key(item, found.keys) == key), None)
                if last:
                    if at is None:
                        node.append(copy_json(value))
                    else:
                        node[at] = copy_json(value)
                    return
                if at is None:
                    return
                child = node[at]
            elif found is not None and found.type == "set":
                if last and member(value) not in {member(item) for item in node}:
                    node.append(copy_json(value))
                return
            else:
                index = int(token)
                if last:
                    node.insert(min(index, len(node)), copy_json(value))
                    return
                if index >= len(node):
                    return
                child = node[index]
            if type(child) is not type(value):
                return
        node, have = child, value

