"""The Differ contract: is a live resource out of step with its desired manifest?

A differ compares one desired resource with its live counterpart and returns a
:class:`~gitops.model.Diff`. It never talks to a target or mutates its inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from gitops.model import Diff, DriftPolicy, Resource

__all__ = ["DEFAULT_POLICY", "Differ"]

#: Desired is a subset of live; lists by position; nothing ignored.
DEFAULT_POLICY = DriftPolicy()


class Differ(ABC):
    """Base class of every differ plugin. Required: :meth:`diff`."""

    #: Registry name (the entry-point name).
    name: ClassVar[str] = ""

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Whether the plugin can run on this machine, and if not, why."""
        return True, ""

    @abstractmethod
    def diff(
        self, desired: Resource, live: Resource | None, policy: DriftPolicy = DEFAULT_POLICY
    ) -> Diff:
        """Compare ``desired`` with ``live`` (None when the object does not exist).

        ``policy`` says what counts as drift on the target (the target declares it, the
        engine adds the reconciler's ignore rules); a differ must honour its ``mode`` and
        ``ignore`` rules, and may use ``list_types`` to compare lists by key.
        """
