"""The Target contract: where live state lives and changes are applied.

A target reads live objects, applies and deletes single resources, and stores the
inventories of the reconcilers that own objects on it, so that prune only ever
deletes what a reconciler itself created. Capabilities are declared as class
attributes; the engine and the conformance kit read them instead of guessing.
A target never decides *what* to change: that is the engine's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from gitops.errors import NotSupportedError
from gitops.model import HealthStatus, Inventory, Resource, ResourceKey

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

    url: str

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the target named by ``url``; raises InvalidURLError if it cannot be parsed."""
        return cls(url, **options)  # type: ignore[call-arg]

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

    def differ_options(self) -> dict[str, Any]:
        """Keyword options for the default (structural) differ: how live state is compared.

        The engine opens ``open_differ("structural", **target.differ_options())`` unless it
        is given a differ. Default ``{}``: desired is a subset of live, so fields this
        target (or anyone else) adds are not drift — and fields removed from the source
        are never removed either. A target that stores exactly what is applied to it, plus
        server-owned metadata and status, returns ``{"exact": True}`` (any other field is
        drift, and a sync removes it); one that tracks field ownership as Kubernetes
        server-side apply does returns ``{"field_manager": NAME}`` (fields NAME applied
        last and desired no longer declares are drift). Never talks to the target.
        """
        return {}

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
