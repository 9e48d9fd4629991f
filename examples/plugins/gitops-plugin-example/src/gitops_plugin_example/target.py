"""The ``jsonl:`` target: live state as one JSON-lines file (see :mod:`.store` for the format).

``jsonl:PATH`` names the file (relative to the working directory, or absolute);
``?fsync=false&lock-timeout=5`` sets :class:`~gitops_plugin_example.options.JsonlOptions`.
Opening, reading and dry runs never create anything: the first real write creates the
file (its folder must exist).

What it declares, and why:

* ``supports_dry_run``: ``apply``/``delete`` validate without writing;
* ``drift_policy()`` is ``EXACT``: the file holds exactly what was applied, so a field
  edited in by hand is drift and a field removed from the source goes with the next sync;
* ``lock()`` takes ``FILE.sync.lock`` (an OS file lock, released if the process dies), so
  two syncs into one file never interleave: the second gets a ConflictError after
  ``lock-timeout`` seconds;
* ``owners()`` reads the inventories in the file, so the engine refuses another
  inventory's objects and never prunes them;
* ``check()`` refuses values JSON cannot hold exactly (mapping keys that are not strings,
  NaN), naming the file they came from.

It must never put a manifest's values in an error (only keys and type names).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from gitops.errors import ApplyError, ConflictError, InvalidURLError
from gitops.manifests import origin_error
from gitops.model import DriftMode, DriftPolicy, Inventory, Resource, ResourceKey
from gitops.options import PluginOptions, query_options
from gitops.targets.base import Target

from gitops_plugin_example.options import JsonlOptions
from gitops_plugin_example.store import Busy, Store, decode, encode

__all__ = ["JsonlTarget"]


class JsonlTarget(Target):
    """Live state in one JSON-lines file. ``JsonlTarget.from_url("jsonl:live.jsonl")``."""

    scheme: ClassVar[str] = "jsonl"
    supports_dry_run: ClassVar[bool] = True
    Options: ClassVar[type[PluginOptions]] = JsonlOptions

    def __init__(self, path: str | os.PathLike[str], options: JsonlOptions | None = None) -> None:
        self.options = options if options is not None else JsonlOptions()
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.url = f"jsonl:{self.path}"
        if self.path.is_dir():
            raise InvalidURLError(self.url, "names a folder; name the file to keep state in")
        self._store = Store(self.path, self.url, fsync=self.options.fsync)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The options in the URL's query; InvalidURLError for a URL that names no file."""
        _path_of(url)
        return dict(query_options(url.partition("?")[2]))

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        assert isinstance(options, JsonlOptions)
        return cls(_path_of(url), options)

    @classmethod
    def viable(cls) -> tuple[bool, str]:
        """Runs where ``fcntl`` file locks exist (POSIX)."""
        try:
            import fcntl  # noqa: F401
        except ImportError:
            return False, "needs POSIX file locks (fcntl)"
        return True, ""

    # -- reading ---------------------------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """The stored objects among ``keys`` (fresh copies; absent ones are missing)."""
        objects = self._store.read().objects
        return {
            key: Resource(key, str(objects[key].get("apiVersion", "")), objects[key], self.url)
            for key in dict.fromkeys(keys)
            if key in objects
        }

    def read_inventory(self, name: str) -> Inventory | None:
        return self._store.read().inventories.get(name)

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> Mapping[ResourceKey, str]:
        """Which of ``keys`` another inventory in the file lists (the first by name)."""
        owner: dict[ResourceKey, str] = {}
        for name, other in sorted(self._store.read().inventories.items()):
            if name != inventory:
                for key in other.entries:
                    owner.setdefault(key, name)
        return {key: owner[key] for key in keys if key in owner}

    def drift_policy(self) -> DriftPolicy:
        """Exact: the file holds exactly what was applied."""
        return DriftPolicy(DriftMode.EXACT)

    def check(self, resources: Sequence[Resource]) -> None:
        """Refuse a manifest JSON cannot hold exactly; ManifestError naming its file."""
        for resource in resources:
            problem = _unstorable(resource.manifest)
            if problem:
                raise origin_error(resource.origin or str(resource.key), problem)

    # -- writing ---------------------------------------------------------------------------

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Store ``resource`` as given, replacing any object with its key; ApplyError if
        its manifest does not match its key or JSON cannot hold it exactly."""
        key = resource.key
        try:
            declared = Resource.from_manifest(resource.manifest).key
        except (KeyError, TypeError, AttributeError):
            raise ApplyError(key, "manifest lacks apiVersion, kind or metadata.name",
                             url=self.url) from None
        if declared != key:
            raise ApplyError(key, f"manifest declares {declared}", url=self.url)
        problem = _unstorable(resource.manifest)
        if problem:
            raise ApplyError(key, problem, url=self.url)
        stored = decode(encode(resource.manifest))  # a copy the caller cannot change
        if not dry_run:
            with self._store.update() as state:
                state.objects[key] = stored
        return Resource(key, resource.api_version, decode(encode(stored)), resource.origin)

    def delete(self, key: ResourceKey, *, dry_run: bool = False) -> bool:
        if dry_run:
            return key in self._store.read().objects
        with self._store.update() as state:
            return state.objects.pop(key, None) is not None

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        copy = Inventory.from_dict(inventory.to_dict())
        with self._store.update() as state:
            state.inventories[name] = copy

    @contextlib.contextmanager
    def _locked(self, inventory: str) -> Iterator[None]:
        try:
            with self._store.sync_lock(self.options.lock_timeout):
                yield
        except Busy as busy:
            holder = f"process {busy.holder}" if busy.holder.isdigit() else "another sync"
            raise ConflictError(
                f"inventory {inventory}",
                f"{self.path} is being synced by {holder}; try again when it is done "
                "(or open the target with lock-timeout=SECONDS to wait)",
                url=self.url,
            ) from None

    def lock(self, inventory: str) -> contextlib.AbstractContextManager[None]:
        """Hold the file for one sync; ConflictError while another handle holds it."""
        return self._locked(inventory)


def _path_of(url: str) -> str:
    scheme, sep, rest = url.partition(":")
    if scheme != "jsonl" or not sep:
        raise InvalidURLError(url, "not a jsonl: URL (jsonl:PATH)")
    path = rest.partition("?")[0]
    if path.startswith("//"):
        parts = urlsplit(url.partition("?")[0])
        if parts.netloc:
            raise InvalidURLError(url, "jsonl: names a local file: jsonl:/PATH or jsonl:PATH")
        path = parts.path
    if not path:
        raise InvalidURLError(url, "empty path (jsonl:live.jsonl names a file)")
    return os.path.expanduser(path)


def _unstorable(manifest: Any) -> str:
    """Why JSON cannot hold ``manifest`` exactly ("" when it can); names no value."""
    try:
        copy = decode(encode(manifest))
    except (TypeError, ValueError) as exc:
        return f"not JSON data ({type(exc).__name__}: a value JSON cannot hold, e.g. NaN)"
    except RecursionError:
        return "nested too deeply"
    if copy != manifest or not _same_types(copy, manifest):
        return "holds a mapping key that is not a string, or a value JSON would change"
    return ""


def _same_types(stored: Any, given: Any) -> bool:
    """Whether JSON kept every value's type (tuples become lists: that is refused too)."""
    if type(stored) is not type(given):
        return False
    if isinstance(given, dict):
        return all(_same_types(stored[k], v) for k, v in given.items())
    if isinstance(given, list):
        return all(_same_types(s, g) for s, g in zip(stored, given, strict=True))
    return True

