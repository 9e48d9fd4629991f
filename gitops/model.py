"""The data model shared by every stage: keys, resources, artifacts, plans, results.

Hot-path types (``ResourceKey``, ``Resource``, ``Diff``, ``Change``) are plain, slotted,
frozen dataclasses or tuples: a plan over 10,000 manifests must not pay for validation
per object. Pydantic models sit at the boundaries, where input is validated
(``ReconcilerOptions``, ``Artifact``). Manifests stay plain dicts. This module imports
nothing from the rest of gitops but ``errors`` and ``masking`` and must never import a
backend. No ``repr()`` here ever shows a Secret's values: a Resource shows its manifest
masked, a Diff only which paths it touches, a ResourceResult its message with the
Secret's values masked.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from gitops.masking import mask_secret, redact_values, secret_values

__all__ = [
    "Action",
    "Artifact",
    "Change",
    "Diff",
    "DriftMode",
    "DriftPolicy",
    "Event",
    "HealthStatus",
    "Hook",
    "HookDeletePolicy",
    "HookPhase",
    "IgnoreDifference",
    "Inventory",
    "ListType",
    "ListTypes",
    "Outcome",
    "Plan",
    "ReconcilerOptions",
    "RenderContext",
    "Resource",
    "ResourceKey",
    "ResourceResult",
    "SyncResult",
    "split_api_version",
]


def split_api_version(api_version: str) -> tuple[str, str]:
    """Split ``apps/v1`` into ``("apps", "v1")`` and ``v1`` into ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


class ResourceKey(NamedTuple):
    """The identity of a resource: group, kind, namespace ("" if cluster-scoped), name.

    The API version is not part of the identity: ``apps/v1`` and ``apps/v1beta2``
    Deployments with the same name are the same object, as on a Kubernetes server.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def group_kind(self) -> str:
        """``Deployment.apps`` or ``ConfigMap`` (core group), as kubectl writes them."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.group_kind}/{self.namespace}/{self.name}"
        return f"{self.group_kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Resource:
    """A manifest (a plain dict) and its key.

    Callers must treat ``manifest`` as read-only: stages share it without copying.
    ``origin`` says where it came from (``apps/web.yaml#2``) for error messages.
    """

    key: ResourceKey
    api_version: str
    manifest: dict[str, Any]
    origin: str = ""

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], origin: str = "") -> Resource:
        """Build a Resource from a manifest that already passed validation."""
        api_version = manifest["apiVersion"]
        metadata = manifest["metadata"]
        key = ResourceKey(
            split_api_version(api_version)[0],
            manifest["kind"],
            metadata.get("namespace") or "",
            metadata["name"],
        )
        return cls(key, api_version, manifest, origin)

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta: Mapping[str, Any] = self.manifest.get("metadata") or {}
        return meta

    @property
    def annotations(self) -> Mapping[str, str]:
        annotations: Mapping[str, str] = self.metadata.get("annotations") or {}
        return annotations

    @property
    def labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.metadata.get("labels") or {}
        return labels

    def __repr__(self) -> str:
        return (
            f"Resource(key={self.key!r}, api_version={self.api_version!r}, "
            f"origin={self.origin!r}, manifest={_shown_manifest(self)!r})"
        )


def _shown_manifest(resource: Resource) -> object:
    """The manifest as a repr may show it: a Secret's (by key or by kind) masked."""
    manifest = resource.manifest
    if not isinstance(manifest, dict):
        return manifest
    return mask_secret(manifest, secret=True if resource.key.kind == "Secret" else None)


class Action(enum.StrEnum):
    """What a plan does to one resource."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Outcome(enum.StrEnum):
    """What happened to one planned change during a sync."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted: an earlier wave failed, or dry run


class HealthStatus(enum.StrEnum):
    """Health of a live resource, as Argo CD and kstatus report it."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


class HookPhase(enum.StrEnum):
    """When a hook runs during a sync (Argo CD's hook types; ``Skip`` is not a phase)."""

    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"


class HookDeletePolicy(enum.StrEnum):
    """When the engine deletes a hook's object (Argo CD's hook delete policies)."""

    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


@dataclass(frozen=True, slots=True)
class Hook:
    """A resource the sync runs in one or more phases instead of keeping it as desired state.

    Hooks are not diffed, not listed in the inventory and never pruned. ``resource`` is
    the object as declared; with ``generate_name`` set (``metadata.generateName``) its key
    names that prefix, and every run creates the object under a new name.
    """

    resource: Resource
    phases: tuple[HookPhase, ...]
    delete_policies: frozenset[HookDeletePolicy] = frozenset(
        {HookDeletePolicy.BEFORE_HOOK_CREATION}
    )
    wave: int = 0
    generate_name: str = ""

    @property
    def key(self) -> ResourceKey:
        return self.resource.key

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the CLI contract."""
        key = self.resource.key
        data: dict[str, Any] = {
            "phases": [p.value for p in self.phases],
            "apiVersion": self.resource.api_version,
            "kind": key.kind,
            "namespace": key.namespace,
        }
        if self.generate_name:
            data["generateName"] = self.generate_name
        else:
            data["name"] = key.name
        data["deletePolicies"] = sorted(p.value for p in self.delete_policies)
        data["wave"] = self.wave
        return data


@dataclass(frozen=True, slots=True)
class Diff:
    """The difference between a desired and a live resource.

    ``patch`` is an RFC 6902 JSON patch that turns the live object into one that
    matches desired: on every field desired declares, and (for differs configured by
    the target with ``exact`` or ``field_manager``) without the fields the source no
    longer declares. For a Secret the patch is masked and for display only; the
    engine applies desired, never the patch. ``text`` is a unified diff for humans,
    with Secret values masked.
    """

    changed: bool
    patch: tuple[dict[str, Any], ...] = ()
    text: str = ""

    def __repr__(self) -> str:
        # the operations' values may be a whole manifest: show only what they touch
        ops = ", ".join(f"{op.get('op')} {op.get('path')}" for op in self.patch)
        lines = self.text.count("\n") + (1 if self.text and not self.text.endswith("\n") else 0)
        return f"Diff(changed={self.changed!r}, patch=[{ops}], text=<{lines} lines>)"


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change. ``desired`` is None for deletions, ``live`` for creations."""

    action: Action
    key: ResourceKey
    api_version: str
    desired: Resource | None = None
    live: Resource | None = None
    diff: Diff | None = None
    wave: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the CLI contract."""
        return {
            "action": self.action.value,
            "apiVersion": self.api_version,
            "kind": self.key.kind,
            "namespace": self.key.namespace,
            "name": self.key.name,
        }


@dataclass(frozen=True, slots=True)
class Inventory:
    """What one reconciler owns on a target: key -> apiVersion, and the revision applied."""

    entries: Mapping[ResourceKey, str]
    revision: str = ""
    #: credential-free URL of the source whose objects these are ("" if unknown)
    source: str = ""

    @property
    def keys(self) -> frozenset[ResourceKey]:
        return frozenset(self.entries)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, sorted so equal inventories serialize identically."""
        data: dict[str, Any] = {"revision": self.revision}
        if self.source:
            data["source"] = self.source
        data["entries"] = [
                {
                    "group": k.group,
                    "kind": k.kind,
                    "namespace": k.namespace,
                    "name": k.name,
                    "apiVersion": self.entries[k],
                }
                for k in sorted(self.entries)
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on a malformed document."""
        try:
            entries = {
                ResourceKey(e["group"], e["kind"], e["namespace"], e["name"]): e["apiVersion"]
                for e in data["entries"]
            }
            revision = str(data.get("revision", ""))
            source = str(data.get("source", ""))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed inventory: {exc!r}") from exc
        return cls(entries, revision, source)


class Artifact(BaseModel):
    """A fetched, read-only tree of configuration at one revision."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(description="credential-free URL of the source")
    revision: str = Field(description="e.g. main@sha1:<40 hex>, v1@sha256:<hex>, sha256:<hex>")
    digest: str = Field(description="sha256:<hex> of the artifact's content")
    path: Path = Field(description="root of the tree (the requested subpath, if any)")
    metadata: dict[str, str] = Field(default_factory=dict)
    root: Path | None = Field(
        default=None,
        description="the whole fetched tree, of which ``path`` is a folder: what a renderer "
        "may read (kustomize's ../../base); None means ``path`` itself",
    )

    @property
    def tree(self) -> Path:
        """The folder nothing may be read outside of: ``root``, else ``path``."""
        return self.root if self.root is not None else self.path


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class DriftMode(enum.StrEnum):
    """How live fields that desired does not declare are judged."""

    #: desired is a subset of live: fields others add are not drift, and fields the
    #: source stops declaring are never removed
    SUBSET = "subset"
    #: the target stores exactly what is applied (plus server-owned metadata and
    #: status): any other field is drift, and a sync removes it
    EXACT = "exact"
    #: fields ownership tracks (Kubernetes server-side apply): what ``field_manager``
    #: applied last and desired no longer declares is drift; what others own is not
    MANAGED = "managed"


class ListType(NamedTuple):
    """How a list compares: ``map`` (items keyed by ``keys``), ``set``, or ``atomic``."""

    type: Literal["map", "set", "atomic"]
    keys: tuple[str, ...] = ()


class ListTypes(Protocol):
    """Where Kubernetes defines how a list merges: strategic-merge keys, schema list types.

    ``path`` names the list by field names from the manifest root, list items not
    counted: ``("spec", "template", "spec", "containers", "ports")``. None: unknown, the
    list compares by position.
    """

    def list_type(self, group: str, kind: str, path: tuple[str, ...]) -> ListType | None:
        """The list type at ``path`` of ``group/kind`` objects, or None when unknown."""
        ...


class IgnoreDifference(BaseModel):
    """One rule of Argo CD's ``ignoreDifferences``: fields of matching objects that are not drift.

    Matches objects of ``group``/``kind`` (and ``name``, ``namespace`` when given);
    ignores the fields at ``jsonPointers`` (RFC 6901), those ``jqPathExpressions``
    select, and those the named ``managedFieldsManagers`` own. Accepts Argo CD's
    camelCase keys and snake_case alike.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    group: str = ""
    kind: str
    name: str = ""
    namespace: str = ""
    json_pointers: tuple[str, ...] = Field(
        default=(), validation_alias=AliasChoices("jsonPointers", "json_pointers")
    )
    jq_path_expressions: tuple[str, ...] = Field(
        default=(), validation_alias=AliasChoices("jqPathExpressions", "jq_path_expressions")
    )
    managed_fields_managers: tuple[str, ...] = Field(
        default=(),
        validation_alias=AliasChoices("managedFieldsManagers", "managed_fields_managers"),
    )

    def matches(self, key: ResourceKey) -> bool:
        """Whether this rule applies to the object ``key`` names ("*" matches any kind)."""
        return (
            (self.group == key.group or self.group == "*")
            and (self.kind == key.kind or self.kind == "*")
            and (not self.name or self.name == key.name)
            and (not self.namespace or self.namespace == key.namespace)
        )


class ReconcilerOptions(BaseModel):
    """Validated options of a :class:`gitops.Reconciler` (see its docstring for each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="inventory name (a DNS label)")
    prune: bool = False
    allow_empty: bool = False
    adopt: bool = Field(default=False, description="take objects other inventories own")
    dry_run: bool = False
    retries: int = Field(default=3, ge=0, le=100)
    retry_backoff: float = Field(default=0.2, ge=0, description="first retry delay (s), doubled")
    retry_max_delay: float = Field(default=10.0, ge=0)
    wait: bool = Field(default=False, description="wait for health between waves")
    wait_timeout: float = Field(default=300.0, gt=0)
    wait_interval: float = Field(default=1.0, gt=0)
    ignore_differences: tuple[IgnoreDifference, ...] = ()
    substitute: dict[str, str] = Field(default_factory=dict)
    render_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not _NAME_RE.match(value):
            raise ValueError(f"name {value!r} must be a DNS label ([a-z0-9-], at most 63 chars)")
        return value


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """What counts as drift on a target; every differ receives one with each diff.

    A target declares ``mode``, ``field_manager`` and ``list_types``
    (:meth:`~gitops.targets.base.Target.drift_policy`); the engine adds the
    reconciler's ``ignore`` rules.
    """

    mode: DriftMode = DriftMode.SUBSET
    #: the field manager whose fields are judged in ``MANAGED`` mode
    field_manager: str = ""
    #: merge semantics of lists (None: every list compares by position)
    list_types: ListTypes | None = None
    #: fields that are never drift, and that a sync leaves alone
    ignore: tuple[IgnoreDifference, ...] = ()

    def __post_init__(self) -> None:
        if self.mode is DriftMode.MANAGED and not self.field_manager:
            raise ValueError("drift mode 'managed' needs a field_manager")

    def rules_for(self, key: ResourceKey) -> tuple[IgnoreDifference, ...]:
        """The ignore rules that apply to ``key``."""
        return tuple(rule for rule in self.ignore if rule.matches(key))


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a renderer may know besides the artifact; part of the render cache key.

    A render is a pure function of the artifact's content and this context, so it is
    cached by both. Scope (namespaced or not) is deliberately absent: it depends on the
    target, which can learn new kinds at any time, so the engine places rendered
    objects (scope, ``default_namespace``) in a separate, uncached step.
    """

    #: the revision being rendered (for labels, annotations; not for caching)
    revision: str = ""
    #: the folder nothing may be read outside of (the whole fetched tree); None: the root
    tree: Path | None = None
    #: the namespace namespaced objects without one will get (informational for renderers)
    default_namespace: str = "default"
    #: Flux-style ``${VAR}`` substitution values (applied after rendering)
    variables: Mapping[str, str] = field(default_factory=dict)
    #: renderer-specific settings (e.g. jsonnet ``ext_vars``); must be JSON-like values
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The ordered changes that would make a target match a source revision."""

    name: str
    source: str
    target: str
    revision: str
    changes: tuple[Change, ...]
    unchanged: int = 0
    #: owned and live but no longer desired, left in place (prune off)
    extraneous: tuple[ResourceKey, ...] = ()
    #: no longer desired, kept because annotated ``gitops.dev/prune: disabled``; disowned
    orphaned: tuple[ResourceKey, ...] = ()
    artifact: Artifact | None = None
    prune: bool = False
    #: the rendered desired set, in source order
    desired: tuple[Resource, ...] = field(default=(), repr=False, compare=False)
    #: the inventory read while planning (None if the target had none)
    inventory: Inventory | None = field(default=None, repr=False, compare=False)
    #: how many objects were compared afresh (the rest reused an earlier comparison)
    diffed: int = field(default=0, compare=False)
    #: the live objects read while planning, by key (for explanations)
    live: Mapping[ResourceKey, Resource] = field(default_factory=dict, repr=False, compare=False)
    #: the drift policy the plan was computed under (the target's, plus ignore rules)
    policy: DriftPolicy | None = field(default=None, repr=False, compare=False)
    #: the hooks a sync of this plan runs (only when it has changes), in source order
    hooks: tuple[Hook, ...] = field(default=(), compare=False)
    #: declared with hook ``Skip``: never applied, never pruned (kept owned if owned)
    skipped: tuple[ResourceKey, ...] = ()

    @property
    def in_sync(self) -> bool:
        """True when applying the plan would change nothing."""
        return not self.changes

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the CLI contract."""
        return {
            "name": self.name,
            "source": self.source,
            "target": self.target,
            "revision": self.revision,
            "in_sync": self.in_sync,
            "changes": [c.to_dict() for c in self.changes],
            "unchanged": self.unchanged,
            "extraneous": [str(k) for k in self.extraneous],
            "orphaned": [str(k) for k in self.orphaned],
            "hooks": [h.to_dict() for h in self.hooks],
            "skipped": [str(k) for k in self.skipped],
        }


@dataclass(frozen=True, slots=True)
class ResourceResult:
    """What a sync did to one resource, or to one run of a hook (``hook`` names its phase)."""

    change: Change
    outcome: Outcome
    message: str = ""
    attempts: int = 0
    health: HealthStatus | None = None
    #: the phase this run of a hook belongs to; None for a change of the plan
    hook: HookPhase | None = None

    def __repr__(self) -> str:
        hook = f", hook={self.hook!r}" if self.hook is not None else ""
        return (
            f"ResourceResult(change={self.change!r}, outcome={self.outcome!r}, "
            f"message={self.shown_message!r}, attempts={self.attempts!r}, "
            f"health={self.health!r}{hook})"
        )

    @property
    def shown_message(self) -> str:
        """``message`` with the values of the Secret it concerns masked (a server or a
        plugin may have quoted the object it refused)."""
        values: list[str] = []
        for res in (self.change.desired, self.change.live):
            if res is not None:
                values += secret_values(res.manifest)
        return redact_values(self.message, sorted(values, key=len, reverse=True))

    def to_dict(self) -> dict[str, Any]:
        data = self.change.to_dict()
        data["outcome"] = self.outcome.value
        if self.message:
            data["message"] = self.shown_message
        if self.health is not None:
            data["health"] = self.health.value
        if self.hook is not None:
            data["hook"] = self.hook.value
        return data


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one sync: the plan it executed and each resource's result."""

    plan: Plan
    results: tuple[ResourceResult, ...]
    dry_run: bool
    started_at: datetime
    finished_at: datetime
    #: why the sync stopped where a hook decided it ("PreSync hook ... failed: ..."), or ""
    message: str = ""

    @property
    def revision(self) -> str:
        return self.plan.revision

    @property
    def failed(self) -> tuple[ResourceResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAILED)

    @property
    def hooks(self) -> tuple[ResourceResult, ...]:
        """The results of hook runs (``hook`` set), in the order they ran."""
        return tuple(r for r in self.results if r.hook is not None)

    @property
    def succeeded(self) -> bool:
        """True when no change failed or was skipped (a dry run succeeds if it validated)."""
        if self.dry_run:
            return not self.failed
        return all(r.outcome is Outcome.SUCCEEDED for r in self.results)

    @property
    def in_sync(self) -> bool:
        """True when the target now matches the revision (false for a dry run with changes)."""
        return self.succeeded and (not self.dry_run or self.plan.in_sync)

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the CLI contract."""
        return {
            "name": self.plan.name,
            "source": self.plan.source,
            "target": self.plan.target,
            "revision": self.revision,
            "in_sync": self.in_sync,
            "dry_run": self.dry_run,
            "succeeded": self.succeeded,
            "changes": [r.to_dict() for r in self.results],
            "unchanged": self.plan.unchanged,
            "extraneous": [str(k) for k in self.plan.extraneous],
            "orphaned": [str(k) for k in self.plan.orphaned],
            "skipped": [str(k) for k in self.plan.skipped],
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(self.duration, 6),
            **({"message": self.message} if self.message else {}),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """An observable step of a reconcile, delivered to ``on_event`` callbacks."""

    reason: str  # e.g. "Planned", "Applied", "ApplyFailed", "Pruned", "SyncSucceeded"
    message: str
    key: ResourceKey | None = None
    revision: str = ""
    warning: bool = False
    timestamp: datetime = field(default_factory=datetime.now)
