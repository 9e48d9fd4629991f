"""The Target contract: where live state lives and changes are applied.

A target reads live objects, applies and deletes single resources, and stores the
inventories of the reconcilers that own objects on it, so that prune only ever
deletes what a reconciler itself created. Capabilities are declared as class
attributes; the engine and the conformance kit read them instead of guessing.
A target never decides *what* to change: that is the engine's job.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from gitops.errors import NotSupportedError
from gitops.model import DriftPolicy, HealthStatus, Inventory, Resource, ResourceKey
from gitops.options import PluginOptions, validate_options

__all__ = ["Target"]


class Target(ABC):
    """Base class of every target plugin.

    Required: :meth:`live`, :meth:`apply`, :meth:`delete`, :meth:`read_inventory`,
    :meth:`write_inventory`. ``url`` must be credential-free.
    """

    #: URL scheme this plugin is registered under (the entry-point name).
    scheme: ClassVar[str] = ""
    #: ``apply``/``delete`` honour ``dry_run=True`` by validating without writing.
    supports_dry_run: ClassVar[bool] = False
    #: a dry run of an object fails until its Namespace or CRD exists (Kubernetes); the
    #: engine then validates such objects at apply time instead of before the first write.
    dry_run_needs_prerequisites: ClassVar[bool] = False
    #: :meth:`health` reports a real assessment.
    supports_health: ClassVar[bool] = False
    #: :meth:`watch` reports drift (``Reconciler.run`` then syncs at once).
    supports_watch: ClassVar[bool] = False
    #: :meth:`read_status` and :meth:`write_status` keep the operator's record of an
    #: application (its sync history, whether it is suspended) beside its inventory.
    supports_status: ClassVar[bool] = False

    #: The plugin's one options model, filled from URL query and keyword arguments.
    Options: ClassVar[type[PluginOptions]] = PluginOptions

    url: str

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The options ``url`` itself carries (its query, say); the plugin parses its URL.

        Raises InvalidURLError for a URL it cannot parse. Default: none.
        """
        return {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the target named by ``url``, with options from its query and ``options``.

        Validates both together, once, into :attr:`Options` (keywords win); raises
        InvalidURLError for a URL or option that is wrong.
        """
        merged = {**cls.url_options(url), **options}
        return cls.from_options(url, validate_options(cls.Options, url, merged))

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Build the target from ``url`` and its validated options. Default: ``cls(url)``."""
        return cls(url)  # type: ignore[call-arg]

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Whether the plugin can run on this machine, and if not, why."""
        return True, ""

    @abstractmethod
    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """Return the live objects among ``keys``; absent objects are simply missing."""

    @abstractmethod
    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Create or update ``resource``; return the live object afterwards.

        Raises :class:`~gitops.errors.ApplyError` (or a subclass) naming the resource.
        """

    @abstractmethod
    def delete(self, key: ResourceKey, *, dry_run: bool = False) -> bool:
        """Delete the object; return False if it did not exist (not an error)."""

    @abstractmethod
    def read_inventory(self, name: str) -> Inventory | None:
        """Return the named inventory, or None if none was ever written."""

    @abstractmethod
    def write_inventory(self, name: str, inventory: Inventory) -> None:
        """Store the named inventory atomically (replacing the previous one)."""

    def is_namespaced(self, group: str, kind: str) -> bool | None:
        """Whether the target knows ``group/kind`` to be namespaced; None when it cannot tell."""
        return None

    def check(self, resources: Sequence[Resource]) -> None:
        """Refuse a desired set this target cannot hold, before anything is planned.

        Raises :class:`~gitops.errors.ManifestError` naming the resource's file (a kind
        the target does not serve, say). Reads only. Default: accepts everything.
        """
        return None

    def own(self, resource: Resource, inventory: str) -> Resource:
        """``resource`` as the named inventory stores it on this target.

        The engine diffs and applies what this returns, so a target that marks what an
        inventory owns (a Kubernetes target adds its ownership label) shows the marking
        as a change where it is missing. Never mutates ``resource``; default: itself.
        """
        return resource

    def drift_policy(self) -> DriftPolicy:
        """How this target's live state compares with desired (never talks to the target).

        Default: :attr:`~gitops.model.DriftMode.SUBSET` (desired is a subset of live: fields
        others add are not drift, and fields removed from the source are never removed).
        A target that stores exactly what is applied declares ``EXACT``; one that tracks
        field ownership as Kubernetes server-side apply does declares ``MANAGED`` with its
        field manager, and ``list_types`` where lists merge by key.
        """
        return DriftPolicy()

    def lock(self, inventory: str) -> contextlib.AbstractContextManager[None]:
        """Hold the target for one sync of ``inventory``: plan-to-inventory is exclusive.

        The engine holds it from reading the inventory to writing the final one, so two
        syncs at once cannot lose ownership of objects. A target another process is
        syncing raises :class:`~gitops.errors.ConflictError` (without waiting long).
        Default: no lock (a target whose inventory write is itself a compare-and-swap,
        or that only one process ever uses).
        """
        return contextlib.nullcontext()

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> Mapping[ResourceKey, str]:
        """Which of ``keys`` inventories other than ``inventory`` list: key -> owner's name.

        The engine refuses to take such objects unless adopting, and never prunes them.
        Default: ``{}`` (the target enforces ownership itself, or cannot tell).
        """
        return {}

    @property
    def adopts(self) -> bool:
        """Whether the target was opened to take over objects other inventories own.

        Its ``adopt`` option, where it has one (``k8s:?adopt=true``, ``dir:out?adopt=true``):
        the engine then does not refuse such objects (it never prunes them either).
        """
        return bool(getattr(getattr(self, "options", None), "adopt", False))

    def describe(self) -> dict[str, str]:
        """What a user should see about this target beside its URL, without a request.

        The CLI's plan header prints it (Kubernetes: ``{"context": ..., "server": ...}``).
        Never credentials. Default: ``{}``.
        """
        return {}

    def read_status(self, inventory: str) -> dict[str, Any] | None:
        """The status record the operator keeps for ``inventory``, or None if none was written.

        A JSON object the target stores as is (only when ``supports_status``): sync
        history and suspension of ``gitops run`` applications live where their objects do.
        """
        raise NotSupportedError(f"{self.url}: target keeps no application status")

    def write_status(self, inventory: str, status: Mapping[str, Any]) -> None:
        """Store the status record of ``inventory`` atomically (only when ``supports_status``)."""
        raise NotSupportedError(f"{self.url}: target keeps no application status")

    def forget(self, inventory: str) -> bool:
        """Delete the stored records of ``inventory`` once it owns nothing: the inventory
        itself and the operator's status record (an application deleted and pruned).

        Returns whether there was something to delete. Default: keeps them (False); an
        inventory with no entries owns nothing, so keeping it is harmless.
        """
        return False

    def health(self, resource: Resource) -> HealthStatus:
        """Assess the health of a live object (only when ``supports_health``)."""
        raise NotSupportedError(f"{self.url}: target does not report health")

    def watch(self, handler: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``handler(event)`` whenever someone else changes what the target holds
        (only when ``supports_watch``); returns a function that unsubscribes."""
        raise NotSupportedError(f"{self.url}: target does not report drift")

    def close(self) -> None:
        """Release connections. Idempotent."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
