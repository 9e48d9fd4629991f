"""The Source contract: where desired state comes from.

A source is opened from a URL (``dir:PATH``, ``git+https://...``, ``oci://...``), each
plugin parsing its own URL. ``resolve()`` is the cheap question "which revision is
current?" (a directory digest, ``ls-remote``, a manifest HEAD); ``fetch(revision)`` makes
that revision available as a read-only tree. A source never renders or applies anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Self

from gitops.model import Artifact
from gitops.options import PluginOptions, validate_options
from gitops.sources.fragment import location

__all__ = ["Source"]


class Source(ABC):
    """Base class of every source plugin.

    Required: :meth:`resolve` and :meth:`fetch`. Everything else has a default.
    ``url`` must be credential-free: it appears in logs, errors and results.
    """

    #: URL scheme this plugin is registered under (the entry-point name).
    scheme: ClassVar[str] = ""

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
        """Open the source named by ``url``, with options from its query and ``options``.

        Validates both together, once, into :attr:`Options` (keywords win); raises
        InvalidURLError naming the credential-free URL and the option (never its value)
        for a URL or option that is wrong. A plugin without an options model accepts no
        options.
        """
        merged = {**cls.url_options(url), **options}
        return cls.from_options(url, validate_options(cls.Options, location(url), merged))

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Build the source from ``url`` and its validated options. Default: ``cls(url)``."""
        return cls(url)  # type: ignore[call-arg]

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Whether the plugin can run on this machine, and if not, why."""
        return True, ""

    def identity(self) -> str:
        """What names this source across revisions: its URL without the ref.

        Two reconcilers of the same repository and path at different refs (``@main``,
        ``@v2``) are the same application; the engine derives the default inventory name
        from this. Default: :attr:`url`. Must be credential-free.
        """
        return self.url

    @abstractmethod
    def resolve(self) -> str:
        """Return the current revision, cheaply (no content download where avoidable)."""

    @abstractmethod
    def fetch(self, revision: str) -> Artifact:
        """Make ``revision`` available as a read-only tree and describe it."""

    def close(self) -> None:
        """Release connections and temporary files. Idempotent."""
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
