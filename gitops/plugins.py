"""The plugin registry: URL scheme (or plugin name) -> plugin class.

Plugins are found through five entry-point groups, ``gitops.sources``,
``gitops.targets``, ``gitops.differs``, ``gitops.renderers`` and ``gitops.generators``
(ApplicationSet generators, see docs/fleets.md); the built-ins are
registered the same way in gitops' own ``pyproject.toml``. Entry points are strings
(``"module:Class"``) and a plugin is imported only when first used, so a broken or
heavy plugin costs nothing until someone asks for it.

Collision policy, explicit rather than "last one wins":

1. a plugin registered at run time with :func:`register` wins (the embedding
   program said so);
2. otherwise the one entry point of that name is used;
3. two entry points of the same name from different distributions are ambiguous:
   using that name raises :class:`~gitops.errors.PluginError` naming both, until the
   program picks one with :func:`register`.

The registry only splits the scheme off a URL; each plugin parses the rest itself.
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from gitops.appsets.generators.base import Generator
from gitops.differs.base import Differ
from gitops.errors import PluginError
from gitops.renderers.base import Renderer
from gitops.sources.base import Source
from gitops.targets.base import Target

__all__ = [
    "GROUPS",
    "PluginInfo",
    "get_plugin",
    "list_plugins",
    "open_differ",
    "open_renderer",
    "open_source",
    "open_target",
    "register",
    "split_scheme",
]

PluginKind = Literal["source", "target", "differ", "renderer", "generator"]

#: Entry-point group of each plugin kind.
GROUPS: dict[PluginKind, str] = {
    "source": "gitops.sources",
    "target": "gitops.targets",
    "differ": "gitops.differs",
    "renderer": "gitops.renderers",
    "generator": "gitops.generators",
}

_BASES: dict[PluginKind, type] = {
    "source": Source,
    "target": Target,
    "differ": Differ,
    "renderer": Renderer,
    "generator": Generator,
}

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9.+-]*):")


def split_scheme(url: str) -> str:
    """Return the plugin name a URL selects: ``git`` for ``git+https://...``, ``dir`` for a bare path.

    A URL without a scheme (``./app``, ``/srv/config``) is a directory, as in kubectl.
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        return "dir"
    return match.group(1).split("+", 1)[0].lower()


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: where it comes from and whether it can run here."""

    kind: PluginKind
    name: str
    value: str  # "module:Class"
    distribution: str  # "gitops-sdk 0.1.0", or "registered at run time"
    obj: type | None = None  # set for classes registered at run time

    def load(self) -> type:
        """Import the plugin class; raises PluginError with the cause if it cannot."""
        if self.obj is not None:
            return self.obj
        module_name, _, attr = self.value.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # any import-time failure of third-party code
            raise PluginError(
                f"{self.kind} plugin {self.name!r} ({self.value}, from {self.distribution}) "
                f"failed to load: {exc}"
            ) from exc
        base = _BASES[self.kind]
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(
                f"{self.kind} plugin {self.name!r} ({self.value}, from {self.distribution}) "
                f"is not a subclass of {base.__module__}.{base.__qualname__}"
            )
        return obj

    def status(self) -> tuple[bool, str]:
        """``(True, "")`` when the plugin loads and declares itself viable, else the reason."""
        try:
            cls = self.load()
        except PluginError as exc:
            return False, str(exc.__cause__ or exc)
        viable: tuple[bool, str] = cls.viable()  # type: ignore[attr-defined]
        return viable


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtime: dict[tuple[PluginKind, str], PluginInfo] = {}
        self._entry_points: dict[PluginKind, dict[str, list[PluginInfo]]] | None = None

    def _discover(self) -> dict[PluginKind, dict[str, list[PluginInfo]]]:
        with self._lock:
            if self._entry_points is None:
                found: dict[PluginKind, dict[str, list[PluginInfo]]] = {k: {} for k in GROUPS}
                for kind, group in GROUPS.items():
                    for ep in metadata.entry_points(group=group):
                        dist = ep.dist
                        where = f"{dist.name} {dist.version}" if dist else "unknown distribution"
                        infos = found[kind].setdefault(ep.name, [])
                        # The same distribution can be visible twice (e.g. editable + wheel).
                        if all(i.value != ep.value for i in infos):
                            infos.append(PluginInfo(kind, ep.name, ep.value, where))
                self._entry_points = found
            return self._entry_points

    def refresh(self) -> None:
        """Forget discovered entry points (after installing a plugin at run time)."""
        with self._lock:
            self._entry_points = None

    def register(self, kind: PluginKind, name: str, obj: type | str) -> None:
        if kind not in GROUPS:
            raise PluginError(f"unknown plugin kind {kind!r}; expected one of {sorted(GROUPS)}")
        if isinstance(obj, str):
            info = PluginInfo(kind, name, obj, "registered at run time")
        else:
            info = PluginInfo(
                kind, name, f"{obj.__module__}:{obj.__qualname__}", "registered at run time", obj
            )
        with self._lock:
            self._runtime[(kind, name)] = info

    def unregister(self, kind: PluginKind, name: str) -> None:
        with self._lock:
            self._runtime.pop((kind, name), None)

    def candidates(self, kind: PluginKind, name: str) -> list[PluginInfo]:
        runtime = self._runtime.get((kind, name))
        if runtime is not None:
            return [runtime]
        return list(self._discover()[kind].get(name, []))

    def names(self, kind: PluginKind) -> list[str]:
        names = set(self._discover()[kind])
        names.update(n for (k, n) in self._runtime if k == kind)
        return sorted(names)

    def get(self, kind: PluginKind, name: str) -> type:
        infos = self.candidates(kind, name)
        if not infos:
            installed = ", ".join(self.names(kind)) or "none"
            raise PluginError(
                f"no {kind} plugin for {name!r}; installed {kind}s: {installed} "
                f"(see `gitops plugins`)"
            )
        if len(infos) > 1:
            who = "; ".join(f"{i.value} from {i.distribution}" for i in infos)
            raise PluginError(
                f"{kind} plugin {name!r} is registered by more than one distribution ({who}); "
                f"choose one with gitops.plugins.register({kind!r}, {name!r}, ...)"
            )
        return infos[0].load()

    def all(self) -> list[PluginInfo]:
        result: list[PluginInfo] = []
        for kind in GROUPS:
            for name in self.names(kind):
                result.extend(self.candidates(kind, name))
        return result


_registry = _Registry()


def register(kind: PluginKind, name: str, obj: type | str) -> None:
    """Register a plugin class (or ``"module:Class"`` string) at run time.

    Run-time registrations win over entry points; use this to plug in a backend
    without packaging it, or to settle an ambiguous name.
    """
    _registry.register(kind, name, obj)


def unregister(kind: PluginKind, name: str) -> None:
    """Remove a run-time registration (entry points are not affected)."""
    _registry.unregister(kind, name)


def refresh() -> None:
    """Re-read entry points, e.g. after a plugin was installed in this process."""
    _registry.refresh()


def get_plugin(kind: PluginKind, name: str) -> type:
    """Return the plugin class for ``name``; raises PluginError listing what is installed."""
    return _registry.get(kind, name)


def list_plugins() -> list[PluginInfo]:
    """Every registered plugin, by kind and name (ambiguous names appear once per provider)."""
    return _registry.all()


def open_source(url: str, **options: Any) -> Source:
    """Open the source a URL names: ``dir:PATH`` or a bare path, ``git+...://``, ``oci://``.

    ``options`` and the options the URL carries are validated once, together, into the
    plugin's options model (:meth:`Source.from_url`); an unknown or invalid option is
    one :class:`~gitops.errors.InvalidURLError` naming the URL and the option.
    """
    cls: type[Source] = _registry.get("source", split_scheme(url))
    return cls.from_url(url, **options)


def open_target(url: str, **options: Any) -> Target:
    """Open the target a URL names: ``dir:PATH``, ``mock:``, ``k8s:``, ``k8s://CONTEXT``.

    Options are validated like :func:`open_source`'s (:meth:`Target.from_url`).
    """
    cls: type[Target] = _registry.get("target", split_scheme(url))
    return cls.from_url(url, **options)


def open_differ(name: str = "structural", **options: Any) -> Differ:
    """Instantiate the differ registered as ``name``."""
    cls = _registry.get("differ", name)
    differ: Differ = cls(**options)
    return differ


def open_renderer(name: str = "yaml", **options: Any) -> Renderer:
    """Instantiate the renderer registered as ``name``."""
    cls = _registry.get("renderer", name)
    renderer: Renderer = cls(**options)
    return renderer
