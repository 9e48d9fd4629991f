"""Why a field that differs is not drift: explanations, their text and JSON forms.

:func:`gitops.differs.structural.explain` walks a desired/live pair as the differ does
and records, for every field where the two sides differ yet no drift is reported, an
:class:`Explanation`: server-owned, defaulted, owned by another manager (named), equal
as quantities, empty on both sides (``null`` equals ``""``, ``{}`` equals absent), a
keyed list in another order, ignored by a rule. Fields equal as written need no
explanation and get none.

Explanations never show a Secret's values: for a Secret, ``detail`` names fields and
reasons only. For other kinds values are shown, shortened.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gitops.differs.managed import field_owners
from gitops.differs.normalize import IGNORED_FIELDS, IgnoreRules
from gitops.differs.walk import ABSENT, pointer

__all__ = ["Explanation", "Notes", "Reason", "explanations_json", "render_explanations"]

_SHOWN = 60  # characters of a value shown in a detail


class Reason(enum.StrEnum):
    """Why a difference is not drift; the values appear as-is in JSON."""

    SERVER_OWNED = "server-owned"
    DEFAULTED = "defaulted"
    OTHER_MANAGER = "other-manager"
    EQUAL_QUANTITY = "equal-quantity"
    NULL_EQUALS_EMPTY = "null-equals-empty"
    KEYED_LIST_ORDER = "keyed-list-order"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Explanation:
    """One field that differs between desired and live without being drift.

    ``path`` is a JSON pointer (RFC 6901) into the live object (list items by their
    live index); ``reason`` a :class:`Reason` value; ``detail`` a sentence for people.
    """

    path: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "detail": self.detail}


def render_explanations(explanations: Sequence[Explanation], title: str = "") -> str:
    """Text for ``gitops diff --explain``: an optional title line, then one line a field."""
    lines = [f"{title}:"] if title else []
    indent = "  " if title else ""
    width = max((len(e.path) for e in explanations), default=0)
    lines += [f"{indent}{e.path.ljust(width)}  {e.reason}: {e.detail}" for e in explanations]
    return "\n".join(lines) + ("\n" if lines else "")


def explanations_json(explanations: Iterable[Explanation]) -> list[dict[str, str]]:
    """The JSON form (a list of ``{"path", "reason", "detail"}``), for ``-o json``."""
    return [e.to_dict() for e in explanations]


class Notes:
    """Collects explanations during a walk (see :mod:`gitops.differs.walk`).

    ``live`` is the live manifest as read (its ``managedFields`` name the owners);
    ``manager`` the field manager of the target (its own fields are never "another
    manager"); ``secret`` hides values.
    """

    def __init__(self, live: dict[str, Any], *, manager: str = "", secret: bool = False) -> None:
        self.live = live
        self.manager = manager
        self.secret = secret
        self.items: list[Explanation] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, tokens: Sequence[str | int], reason: Reason, detail: str) -> None:
        path = pointer(tuple(tokens))
        if (path, reason.value) not in self._seen:
            self._seen.add((path, reason.value))
            self.items.append(Explanation(path, reason.value, detail))

    def live_only(self, tokens: Sequence[str | int], value: Any) -> None:
        """Live has a field (or list item) desired does not declare, and it is not drift."""
        if value is None:
            return  # null is absent
        if type(value) in (dict, list) and not value:
            self.empty(tokens, ABSENT, value)
            return
        ours = f"{self.manager} ("
        owners = [o for o in field_owners(self.live, tuple(tokens)) if not o.startswith(ours)]
        shown = "" if self.secret else f" ({self.value(value)})"
        if owners:
            self.add(tokens, Reason.OTHER_MANAGER,
                     f"owned by {', '.join(owners)}; desired does not declare it{shown}")
        else:
            self.add(tokens, Reason.DEFAULTED,
                     f"set live (a server default or another writer); desired does not "
                     f"declare it{shown}")

    def quantity(self, tokens: Sequence[str | int], want: Any, have: Any) -> None:
        detail = "equal as quantities" if self.secret else (
            f"desired {self.value(want)} and live {self.value(have)} are the same quantity")
        self.add(tokens, Reason.EQUAL_QUANTITY, detail)

    def empty(self, tokens: Sequence[str | int], want: Any, have: Any) -> None:
        self.add(tokens, Reason.NULL_EQUALS_EMPTY,
                 f"desired {self.kind_of(want)} and live {self.kind_of(have)} are both empty")

    def order(self, tokens: Sequence[str | int], keys: list[str]) -> None:
        shown = "" if self.secret else f": desired order {', '.join(keys)}"
        self.add(tokens, Reason.KEYED_LIST_ORDER,
                 f"items compare by key; only their order differs{shown}"[:240])

    def ignored(self, tokens: Sequence[str | int], index: int, how: str) -> None:
        self.add(tokens, Reason.IGNORED, f"ignored by rule {index} ({how})")

    def server_owned(self, live: Any, rules: IgnoreRules = IGNORED_FIELDS) -> None:
        """Note every server-owned field live holds (status, uid, managedFields...)."""
        self._server_owned(live, rules, ())

    def _server_owned(self, value: Any, rules: IgnoreRules, at: tuple[str, ...]) -> None:
        if type(value) is not dict:
            return
        for key, rule in rules.items():
            if key not in value:
                continue
            if rule is None:
                self.add((*at, key), Reason.SERVER_OWNED,
                         "set by the API server (or kubectl); never compared")
            else:
                self._server_owned(value[key], rule, (*at, key))

    @staticmethod
    def kind_of(value: Any) -> str:
        if value is None:
            return "null"
        if type(value) in (dict, list, str) and not value:
            return json.dumps(value)
        return "absent" if value is ABSENT else "empty"

    def value(self, value: Any) -> str:
        if self.secret:
            return "a value"
        text = json.dumps(value, sort_keys=False, default=str)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
