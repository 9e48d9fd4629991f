"""The in-memory target (``mock:``): an API-server-like store for tests, demos and dry runs.

It behaves like a small Kubernetes API server: writes get a ``uid``, a
``creationTimestamp``, a ``generation`` that moves only when the spec changes and a new
``resourceVersion`` each time; ``status`` survives applies; reads return copies. It
records every call and can inject faults (see :mod:`gitops.targets.faults`) so engine
tests can prove retries, partial failures and "a failed apply changes nothing".

URLs: ``mock:`` is a new empty target; ``mock:NAME`` a process-wide shared one (two
reconcilers, or a CLI run and its test, see the same state); query options inject
faults: ``mock:NAME?failure_rate=0.1&seed=7&latency=0.01`` (see :class:`MemoryOptions`).

This module must never touch the disk or the network, and a failed call must never
change state.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator

from gitops.errors import ApplyError, ConflictError, InvalidURLError
from gitops.health import assess
from gitops.model import (
    DriftMode,
    DriftPolicy,
    HealthStatus,
    Inventory,
    Resource,
    ResourceKey,
    split_api_version,
)
from gitops.options import PluginOptions
from gitops.targets.base import Target
from gitops.targets.faults import METHODS, Call, FailureRate, Fault, FaultInjector, Latency
from gitops.targets.urlquery import strict_query_options

__all__ = ["KUBERNETES_SCOPES", "MemoryOptions", "MemoryTarget", "StatusFactory"]

#: Computes the ``status`` of an object on write (simulating controllers); None keeps it.
StatusFactory = Callable[[dict[str, Any]], dict[str, Any] | None]

#: Scopes of common built-in kinds, keyed like ``ResourceKey.group_kind``: True if namespaced.
KUBERNETES_SCOPES: Mapping[str, bool] = MappingProxyType(
    {
        **dict.fromkeys(
            [
                "Namespace",
                "Node",
                "PersistentVolume",
                "ClusterRole.rbac.authorization.k8s.io",
                "ClusterRoleBinding.rbac.authorization.k8s.io",
                "CustomResourceDefinition.apiextensions.k8s.io",
                "StorageClass.storage.k8s.io",
                "PriorityClass.scheduling.k8s.io",
                "IngressClass.networking.k8s.io",
            ],
            False,
        ),
        **dict.fromkeys(
            [
                "ConfigMap",
                "Secret",
                "Service",
                "ServiceAccount",
                "Pod",
                "PersistentVolumeClaim",
                "Deployment.apps",
                "StatefulSet.apps",
                "DaemonSet.apps",
                "ReplicaSet.apps",
                "Job.batch",
                "CronJob.batch",
                "Ingress.networking.k8s.io",
                "NetworkPolicy.networking.k8s.io",
                "Role.rbac.authorization.k8s.io",
                "RoleBinding.rbac.authorization.k8s.io",
                "HorizontalPodAutoscaler.autoscaling",
            ],
            True,
        ),
    }
)

_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "resourceVersion")
_URL_OPTIONS = (
    "failure_rate", "seed", "transient", "methods", "latency", "latency_max", "lock_timeout"
)
#: Seconds :meth:`MemoryTarget.lock` waits for another sync of the same state to end.
DEFAULT_LOCK_TIMEOUT = 2.0


class MemoryOptions(PluginOptions):
    """Options of the ``mock:`` target: from the URL query (the fault options) or keywords.

    ``failure_rate`` adds a :class:`~gitops.targets.faults.FailureRate` rule and
    ``latency``/``latency_max`` a :class:`~gitops.targets.faults.Latency` rule, both drawn
    from ``seed`` and limited to ``methods``; ``transient`` says whether injected failures
    are retried. ``faults``, ``scopes`` and ``status_factory`` are Python objects, given as
    keywords only (see :class:`MemoryTarget`).
    """

    failure_rate: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0
    transient: bool = True
    methods: tuple[str, ...] | None = None
    latency: float | None = Field(default=None, ge=0)
    latency_max: float | None = Field(default=None, ge=0)
    lock_timeout: float = Field(default=DEFAULT_LOCK_TIMEOUT, ge=0)
    faults: FaultInjector | tuple[Fault, ...] = ()
    scopes: Mapping[str, bool] | None = None
    status_factory: StatusFactory | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = sorted(set(value or ()) - set(METHODS))
        if unknown or value == ():
            raise ValueError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
        return value

    @field_validator("latency_max")
    @classmethod
    def _latency_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value < (info.data.get("latency") or 0.0):
            raise ValueError("must not be below latency")
        return value

    def fault_rules(self) -> list[Fault]:
        """The rules these options describe: the query's, then ``faults``."""
        rules: list[Fault] = []
        if self.failure_rate is not None:
            rules.append(
                FailureRate(
                    self.failure_rate, seed=self.seed, method=self.methods,
                    transient=self.transient,
                )
            )
        if self.latency is not None or self.latency_max is not None:
            rules.append(
                Latency(
                    self.latency or 0.0, max_seconds=self.latency_max, seed=self.seed,
                    method=self.methods,
                )
            )
        given = self.faults.faults if isinstance(self.faults, FaultInjector) else self.faults
        return [*rules, *given]

_shared: dict[str, MemoryTarget] = {}
_shared_lock = threading.Lock()


class _Server:
    """The state behind one or more :class:`MemoryTarget` handles; every method locks."""

    def __init__(self, scopes: Mapping[str, bool] | None, status_factory: StatusFactory | None):
        self.lock = threading.RLock()
        self.objects: dict[ResourceKey, dict[str, Any]] = {}
        self.inventories: dict[str, Inventory] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.scopes = dict(scopes or {})
        self.status_factory = status_factory
        self.version = 0
        self.sync_lock = threading.Lock()  # held by one sync at a time (MemoryTarget.lock)
        self.sync_holder = ""  # the inventory whose sync holds it

    @contextlib.contextmanager
    def hold(self, inventory: str, url: str, timeout: float) -> Iterator[None]:
        """Hold the sync lock for ``inventory``; ConflictError after ``timeout`` seconds."""
        if not self.sync_lock.acquire(timeout=timeout):
            raise ConflictError(
                url,
                f"another sync of {url} is running (inventory {self.sync_holder!r}); "
                "try again when it ends",
                url=url,
            )
        try:
            self.sync_holder = inventory
            yield
        finally:
            self.sync_holder = ""
            self.sync_lock.release()

    def write(
        self, key: ResourceKey, manifest: dict[str, Any], *, dry_run: bool, keep_status: bool
    ) -> dict[str, Any]:
        """Store a copy of ``manifest`` as the server would; return a copy of the result."""
        with self.lock:
            old = self.objects.get(key)
            new = _copy(manifest)
            meta = new.setdefault("metadata", {})
            _stamp(meta, old, spec_changed=old is None or _spec(old) != _spec(new))
            if keep_status and old is not None and "status" not in new and "status" in old:
                new["status"] = _clone(old["status"])
            if dry_run:  # nothing is stored, and controllers do not see dry runs
                _set_or_drop(meta, "resourceVersion", old and old["metadata"]["resourceVersion"])
                return new
            meta["resourceVersion"] = self.next_version()
            self.run_status_factory(new)
            self.objects[key] = new
            return _copy(new)

    def set_status(self, key: ResourceKey, status: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(key)
            if obj is None:
                raise KeyError(f"{key} does not exist")
            obj["status"] = _copy(status)
            obj["metadata"]["resourceVersion"] = self.next_version()
            return _copy(obj)

    def run_status_factory(self, obj: dict[str, Any]) -> None:
        if self.status_factory is not None:
            status = self.status_factory(_copy(obj))
            if status is not None:
                obj["status"] = _copy(status)

    def next_version(self) -> str:
        self.version += 1
        return str(self.version)

    def check(self, key: ResourceKey, manifest: Any, api_version: str) -> None:
        """Raise ApplyError if the manifest does not match its key or the kind's scope."""
        problem = _mismatch(key, manifest, api_version)
        namespaced = self.scopes.get(key.group_kind)
        if problem is None and namespaced is True and not key.namespace:
            problem = f"{key.group_kind} is namespaced: metadata.namespace is required"
        if problem is None and namespaced is False and key.namespace:
            problem = f"{key.group_kind} is cluster-scoped: metadata.namespace must be empty"
        if problem is not None:
            raise ApplyError(key, problem)


class MemoryTarget(Target):
    """An in-memory, API-server-like target with call recording and fault injection.

    ``faults`` are rules from :mod:`gitops.targets.faults` checked before every call;
    ``scopes`` maps ``group_kind`` (``"Deployment.apps"``, ``"Namespace"``) to
    namespaced-or-not (see :data:`KUBERNETES_SCOPES`); ``status_factory`` computes an
    object's ``status`` on every write, like a controller would; ``lock_timeout`` is how
    long :meth:`lock` waits for another sync of the same state.
    """

    Options: ClassVar[type[PluginOptions]] = MemoryOptions

    scheme: ClassVar[str] = "mock"
    supports_dry_run: ClassVar[bool] = True
    supports_health: ClassVar[bool] = True
    supports_status: ClassVar[bool] = True

    def __init__(
        self,
        url: str = "mock:",
        *,
        faults: FaultInjector | Iterable[Fault] | None = None,
        scopes: Mapping[str, bool] | None = None,
        status_factory: StatusFactory | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.url = url
        self.faults = faults if isinstance(faults, FaultInjector) else FaultInjector(faults or ())
        self.lock_timeout = lock_timeout
        self._server = _Server(scopes, status_factory)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The fault options in the query of ``mock:``, ``mock:NAME`` or ``mock://NAME``.

        Raises InvalidURLError for another scheme, a fragment, a bad name, or an unknown,
        repeated or malformed query option.
        """
        return parse_url(url)[1]

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Open ``mock:`` (a new target) or ``mock:NAME`` (the shared one) with ``options``.

        For a shared name, ``scopes``/``status_factory`` apply only when it is first
        created, and fault options give a new handle on the shared state with its own
        faults. Raises ValueError when ``scopes``/``status_factory`` are given for a shared
        name that exists.
        """
        assert isinstance(options, MemoryOptions)
        name = parse_url(url)[0]
        faults = options.fault_rules()
        if not name:
            return cls(
                url, faults=faults, scopes=options.scopes,
                status_factory=options.status_factory, lock_timeout=options.lock_timeout,
            )
        base = cls.shared(name, scopes=options.scopes, status_factory=options.status_factory)
        if not faults and options.lock_timeout == base.lock_timeout:
            return base
        return base.with_faults(*faults, url=url, lock_timeout=options.lock_timeout)

    @classmethod
    def shared(
        cls,
        name: str,
        *,
        scopes: Mapping[str, bool] | None = None,
        status_factory: StatusFactory | None = None,
    ) -> Self:
        """The process-wide target called ``name`` (``mock:NAME``), created on first use.

        Raises ValueError for an invalid name, or when options are given for a name that
        already exists (call :meth:`clear_shared` first).
        """
        if not _valid_name(name):
            raise ValueError(f"invalid shared target name {name!r}: use [A-Za-z0-9._-]")
        with _shared_lock:
            target = _shared.get(name)
            if target is None:
                target = cls(f"mock:{name}", scopes=scopes, status_factory=status_factory)
                _shared[name] = target
            elif scopes is not None or status_factory is not None:
                raise ValueError(f"shared target mock:{name} exists; options apply on creation")
            if not isinstance(target, cls):
                raise ValueError(f"shared target mock:{name} is a {type(target).__name__}")
            return target

    @staticmethod
    def clear_shared() -> None:
        """Forget every shared target (tests call this in teardown)."""
        with _shared_lock:
            _shared.clear()

    def with_faults(
        self, *faults: Fault, url: str | None = None, lock_timeout: float | None = None
    ) -> Self:
        """A new handle on this target's state (objects, inventories, calls, sync lock)
        with its own faults (and ``lock_timeout``, by default this handle's)."""
        handle = type(self).__new__(type(self))
        handle.url = url or self.url
        handle.faults = FaultInjector(faults)
        handle.lock_timeout = self.lock_timeout if lock_timeout is None else lock_timeout
        handle._server = self._server
        return handle

    # -- the Target contract -----------------------------------------------------------

    def live(self, keys: Iterable[ResourceKey]) -> dict[ResourceKey, Resource]:
        """Copies of the stored objects among ``keys``; records one ``live`` call."""
        self._call("live", None)
        server = self._server
        with server.lock:
            found = {k: server.objects[k] for k in keys if k in server.objects}
            return {k: _resource(k, _copy(obj)) for k, obj in found.items()}

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Create or replace the object; returns the stored copy. Raises ApplyError."""
        self._call("apply", resource.key, dry_run)
        self._server.check(resource.key, resource.manifest, resource.api_version)
        stored = self._server.write(
            resource.key, resource.manifest, dry_run=dry_run, keep_status=True
        )
        return _resource(resource.key, stored, resource.origin)

    def delete(self, key: ResourceKey, *, dry_run: bool = False) -> bool:
        """Remove the object; False if it did not exist."""
        self._call("delete", key, dry_run)
        server = self._server
        with server.lock:
            if dry_run:
                return key in server.objects
            return server.objects.pop(key, None) is not None

    def read_inventory(self, name: str) -> Inventory | None:
        self._call("read_inventory", None)
        with self._server.lock:
            inventory = self._server.inventories.get(name)
        return None if inventory is None else _copy_inventory(inventory)

    def write_inventory(self, name: str, inventory: Inventory) -> None:
        self._call("write_inventory", None)
        copied = _copy_inventory(inventory)
        with self._server.lock:
            self._server.inventories[name] = copied

    def read_status(self, inventory: str) -> dict[str, Any] | None:
        """The operator's record of ``inventory`` (a deep copy), or None."""
        self._call("read_status", None)
        with self._server.lock:
            record = self._server.statuses.get(inventory)
        return None if record is None else copy.deepcopy(record)

    def write_status(self, inventory: str, status: Mapping[str, Any]) -> None:
        """Store a deep copy of the operator's record of ``inventory``."""
        self._call("write_status", None)
        copied = copy.deepcopy(dict(status))
        with self._server.lock:
            self._server.statuses[inventory] = copied

    def forget(self, inventory: str) -> bool:
        """Drop the inventory and status record of ``inventory``."""
        with self._server.lock:
            found = self._server.inventories.pop(inventory, None) is not None
            return self._server.statuses.pop(inventory, None) is not None or found

    def is_namespaced(self, group: str, kind: str) -> bool | None:
        key = f"{kind}.{group}" if group else kind
        return self._server.scopes.get(key)

    def lock(self, inventory: str) -> contextlib.AbstractContextManager[None]:
        """Hold this state (shared by every handle on ``mock:NAME``) for one sync.

        One sync at a time per state, whatever its inventory: another one waits up to
        ``lock_timeout`` seconds, then gets ConflictError ("another sync of mock:NAME is
        running (inventory 'a')"). Not re-entrant; records no call and injects no fault.
        """
        return self._server.hold(inventory, self.url, self.lock_timeout)

    def owners(self, keys: Iterable[ResourceKey], inventory: str) -> Mapping[ResourceKey, str]:
        """The keys among ``keys`` that stored inventories other than ``inventory`` list:
        key -> that inventory's name (the first by name when several do). Records no call."""
        with self._server.lock:
            others = sorted(
                (name, inv.entries) for name, inv in self._server.inventories.items()
                if name != inventory
            )
        wanted = set(keys)
        found: dict[ResourceKey, str] = {}
        for name, entries in others:
            for key in wanted.intersection(entries):
                found.setdefault(key, name)
        return found

    def drift_policy(self) -> DriftPolicy:
        """Exact comparison: an apply replaces the whole object (keeping server fields and
        status), so any other field on it is drift, and a field removed from the source
        goes with the next sync."""
        return DriftPolicy(DriftMode.EXACT)

    def health(self, resource: Resource) -> HealthStatus:
        """Assess the *stored* object with that key (Missing when there is none)."""
        with self._server.lock:
            obj = self._server.objects.get(resource.key)
            manifest = None if obj is None else _copy(obj)
        return assess(manifest)

    # -- inspection and simulation helpers for tests -------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call received so far, in order (including calls that failed)."""
        with self._server.lock:
            return list(self._server.calls)

    def counts(self) -> Counter[str]:
        """Number of calls per method name (0 for methods never called)."""
        with self._server.lock:
            return Counter(c.method for c in self._server.calls)

    def reset_calls(self) -> None:
        """Forget the recorded calls (the state stays)."""
        with self._server.lock:
            self._server.calls.clear()

    def objects(self) -> dict[ResourceKey, dict[str, Any]]:
        """A snapshot: key -> copy of the stored manifest, sorted by key; records no call."""
        with self._server.lock:
            return {k: _copy(self._server.objects[k]) for k in sorted(self._server.objects)}

    def put(self, manifest: dict[str, Any]) -> Resource:
        """Create or replace an object behind the reconciler's back (no call, no faults)."""
        resource = Resource.from_manifest(manifest)
        self._server.check(resource.key, manifest, resource.api_version)
        stored = self._server.write(resource.key, manifest, dry_run=False, keep_status=True)
        return _resource(resource.key, stored)

    def mutate(
        self, key: ResourceKey, fn: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> Resource:
        """Edit a stored object as ``kubectl edit`` would (drift); returns the result.

        ``fn`` gets a copy and edits it in place or returns a replacement. The server
        bumps ``resourceVersion`` (and ``generation`` if the spec changed). No call is
        recorded and no fault fires. Raises KeyError if the object does not exist.
        """
        server = self._server
        with server.lock:
            if key not in server.objects:
                raise KeyError(f"{key} does not exist on {self.url}")
            edited = _copy(server.objects[key])
            replacement = fn(edited)
            manifest = edited if replacement is None else replacement
            server.check(key, manifest, str(manifest.get("apiVersion", "")))
            stored = server.write(key, manifest, dry_run=False, keep_status=False)
        return _resource(key, stored)

    def set_status(self, key: ResourceKey, status: dict[str, Any]) -> Resource:
        """Replace the status as a controller would (new resourceVersion, same generation)."""
        return _resource(key, self._server.set_status(key, status))

    # -- internals -----------------------------------------------------------------------

    def _call(self, method: str, key: ResourceKey | None, dry_run: bool = False) -> None:
        """Record the call, then let the faults delay or fail it before any state change."""
        call = Call(method, key, dry_run)
        with self._server.lock:
            self._server.calls.append(call)
        self.faults.check(call, self.url)


# -- URL parsing -----------------------------------------------------------------------


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split a ``mock:`` URL into the shared name ("" for none) and its query options
    (strings, validated by :class:`MemoryOptions`).

    Raises InvalidURLError naming the URL and the problem.
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "mock":
        raise InvalidURLError(url, "expected mock:, mock:NAME or mock:NAME?OPTIONS")
    rest = rest.removeprefix("//")
    if "#" in rest:
        raise InvalidURLError(url, "mock: URLs take no #fragment")
    name, _, query = rest.partition("?")
    if name and not _valid_name(name):
        raise InvalidURLError(url, f"invalid name {name!r}: use letters, digits, '.', '_', '-'")
    return name, strict_query_options(url, query, _URL_OPTIONS)


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


# -- object helpers --------------------------------------------------------------------


def _copy(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a manifest."""
    return {k: _clone(v) for k, v in manifest.items()}


def _clone(value: Any) -> Any:
    """Deep-copy JSON-like data (much faster than copy.deepcopy for manifests)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, set | bytearray):
        return type(value)(value)
    return value  # str, int, float, bool, None, and other immutable scalars


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what moves ``generation``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _stamp(meta: dict[str, Any], old: dict[str, Any] | None, *, spec_changed: bool) -> None:
    for field in _SERVER_FIELDS:
        meta.pop(field, None)
    if old is None:
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["generation"] = 1
        return
    old_meta = old["metadata"]
    meta["uid"] = old_meta["uid"]
    meta["creationTimestamp"] = old_meta["creationTimestamp"]
    meta["generation"] = old_meta["generation"] + (1 if spec_changed else 0)


def _set_or_drop(meta: dict[str, Any], field: str, value: Any) -> None:
    if value:
        meta[field] = value
    else:
        meta.pop(field, None)


def _mismatch(key: ResourceKey, manifest: Any, api_version: str) -> str | None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
        return "manifest must be a mapping with a metadata mapping"
    meta = manifest["metadata"]
    found = ResourceKey(
        split_api_version(str(manifest.get("apiVersion", api_version)))[0],
        str(manifest.get("kind")),
        str(meta.get("namespace") or ""),
        str(meta.get("name")),
    )
    if found != key:
        return f"manifest names {found}, not the key it was applied under"
    return None


def _resource(key: ResourceKey, manifest: dict[str, Any], origin: str = "") -> Resource:
    return Resource(key, str(manifest.get("apiVersion", "")), manifest, origin)


def _copy_inventory(inventory: Inventory) -> Inventory:
    return Inventory(dict(inventory.entries), inventory.revision, inventory.source)
