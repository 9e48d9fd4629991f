"""Helpers for JSON data (dicts, lists, scalars), the only kind of value the emulator stores."""

from __future__ import annotations

from typing import Any, TypeVar, cast

__all__ = ["clone"]

T = TypeVar("T")


def clone(value: T) -> T:
    """A deep copy of JSON data: several times faster than ``copy.deepcopy``."""
    return cast(T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value
