"""The ``ApplicationSet`` document (``gitops.dev/v1alpha1``): generators and a template.

An ApplicationSet stamps out Applications: each parameter set its ``spec.generators``
give fills the ``{{param}}`` placeholders of ``spec.template`` (Argo CD's default
templating). Field names follow Argo CD's ApplicationSet (``generators``, ``template``,
``syncPolicy.applicationsSync``, ``strategy.rollingSync.steps[].matchExpressions`` /
``maxUpdate``). This module only describes and validates the document; generating
lives in :mod:`gitops.appsets.generate`. The template's ``spec`` is checked as an
Application spec only once filled in (its strings may hold placeholders). Errors and
``repr()`` never show a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gitops.apps.durations import Duration
from gitops.apps.spec import Document, Metadata
from gitops.errors import InputError

__all__ = [
    "APPLICATIONS_SYNC_POLICIES",
    "KIND",
    "ApplicationSet",
    "ApplicationSetSpec",
    "GeneratorList",
    "GeneratorSpec",
    "LabelSelectorRequirement",
    "RollingSyncStep",
    "RollingSyncStrategy",
    "StrategySpec",
    "SyncPolicySpec",
    "TemplateMetadata",
    "TemplateSpec",
    "check_generators",
]

KIND = "ApplicationSet"

#: Argo CD's ``applicationsSync`` policies: what the set may do to the Applications it owns
APPLICATIONS_SYNC_POLICIES = ("sync", "create-update", "create-only", "create-delete")

_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
_GENERATOR_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


#: one entry of ``spec.generators``: ``{GENERATOR: CONFIG}`` (exactly one key; the name
#: is resolved through the ``gitops.generators`` entry points when generating)
GeneratorSpec = dict[str, dict[str, Any]]


def check_generators(value: list[GeneratorSpec], *, where: str = "generators") -> list[GeneratorSpec]:
    """Each entry a one-key mapping ``{name: {config}}`` (ValueError, naming the index)."""
    for index, entry in enumerate(value):
        if len(entry) != 1:
            raise ValueError(f"{where}[{index}] must have exactly one key, the generator's name "
                             "(list, git, clusters, matrix, merge or a plugin)")
        (name,) = entry
        if not _GENERATOR_NAME.match(name):
            raise ValueError(f"{where}[{index}]: a generator name is letters, digits, '_', '.', '-'")
    return value


#: ``generators``: a list of ``{name: config}`` entries, each checked by :func:`check_generators`
GeneratorList = Annotated[list[GeneratorSpec], AfterValidator(check_generators)]


class TemplateMetadata(_Model):
    """``template.metadata``: ``name`` (required) and the rest; strings may hold ``{{param}}``.

    Checked as an Application's metadata (DNS labels) once filled in; ``namespace``
    absent: the set's own namespace (as Argo CD puts generated Applications beside their set).
    """

    name: str = Field(min_length=1)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TemplateSpec(_Model):
    """``spec.template``: the Application each parameter set becomes (``metadata`` and ``spec``).

    ``spec`` is an Application spec whose strings may hold ``{{param}}`` placeholders;
    it is validated as :class:`gitops.apps.spec.ApplicationSpec` after templating.
    """

    metadata: TemplateMetadata
    spec: dict[str, Any]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "metadata", self.metadata
        yield "spec", sorted(self.spec)  # names only: options may hold credentials

    @field_validator("spec")
    @classmethod
    def _has_source_and_target(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in ("source", "target") if key not in value]
        if missing:
            raise ValueError(f"an Application spec needs {' and '.join(missing)}")
        return value


class SyncPolicySpec(_Model):
    """``spec.syncPolicy``: what the set does to the Applications it generated.

    ``applicationsSync`` (Argo CD's names): ``sync`` (default: create, update and
    delete, pruning a deleted Application's objects), ``create-update`` (never delete),
    ``create-only`` (never update nor delete), ``create-delete`` (never update).
    ``preserveResourcesOnDeletion``: a deleted Application leaves its objects in place.
    """

    applications_sync: Literal["sync", "create-update", "create-only", "create-delete"] = Field(
        default="sync", alias="applicationsSync")
    preserve_resources_on_deletion: bool = Field(default=False, alias="preserveResourcesOnDeletion")


class LabelSelectorRequirement(_Model):
    """One ``matchExpressions`` entry, as Kubernetes label selectors write it."""

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class RollingSyncStep(_Model):
    """One step: the generated Applications its ``matchExpressions`` select (all must match).

    ``maxUpdate``: at most this many of them updated at once, a count (``0``: none) or a
    percent (``"25%"``, rounded down but at least one when above 0%); absent: all.
    """

    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(alias="matchExpressions")
    max_update: int | str | None = Field(default=None, alias="maxUpdate")

    @field_validator("max_update")
    @classmethod
    def _count_or_percent(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, bool) or (isinstance(value, int) and value < 0):
            raise ValueError("maxUpdate is a count (0 or more) or a percent such as \"25%\"")
        if isinstance(value, str) and not _PERCENT.match(value):
            raise ValueError("maxUpdate is a count (0 or more) or a percent such as \"25%\"")
        return value

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether an Application with ``labels`` belongs to this step."""
        return all(requirement.matches(labels) for requirement in self.match_expressions)

    def limit(self, total: int) -> int:
        """How many of the step's ``total`` Applications may be updated at once."""
        if self.max_update is None:
            return total
        if isinstance(self.max_update, int):
            return min(self.max_update, total)
        percent = int(self.max_update[:-1])
        if percent == 0 or total == 0:
            return 0
        return min(total, max(1, total * percent // 100))


class RollingSyncStrategy(_Model):
    """``strategy.rollingSync``: the ordered ``steps``."""

    steps: tuple[RollingSyncStep, ...] = Field(min_length=1)


class StrategySpec(_Model):
    """``spec.strategy``: ``type`` ``AllAtOnce`` (default) or ``RollingSync`` with ``rollingSync``.

    ``type`` may be left out when ``rollingSync`` is given (then it is ``RollingSync``).
    """

    type: Literal["AllAtOnce", "RollingSync"] | None = None
    rolling_sync: RollingSyncStrategy | None = Field(default=None, alias="rollingSync")

    @model_validator(mode="after")
    def _consistent(self) -> StrategySpec:
        if self.type == "RollingSync" and self.rolling_sync is None:
            raise ValueError("type RollingSync needs rollingSync.steps")
        if self.type == "AllAtOnce" and self.rolling_sync is not None:
            raise ValueError("rollingSync is only read with type RollingSync")
        return self

    @property
    def rolling(self) -> bool:
        """Whether the set rolls out step by step."""
        return self.rolling_sync is not None


class ApplicationSetSpec(_Model):
    """``spec``: ``generators``, ``template``, ``syncPolicy``, ``strategy`` and ``interval``."""

    generators: GeneratorList = Field(min_length=1)
    template: TemplateSpec
    sync_policy: SyncPolicySpec = Field(default_factory=SyncPolicySpec, alias="syncPolicy")
    strategy: StrategySpec | None = None
    interval: Duration = Field(
        default="1m", gt=0, validate_default=True,
        description="how often the generators are evaluated again",
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            # generator names only: a config may hold credentials (a git source's options)
            yield key, ([next(iter(g)) for g in self.generators] if key == "generators" else value)


class ApplicationSet(Document):
    """One declared set: ``apiVersion: gitops.dev/v1alpha1``, ``kind: ApplicationSet``."""

    api_version: Literal["gitops.dev/v1alpha1"] = Field(default="gitops.dev/v1alpha1", alias="apiVersion")
    kind: Literal["ApplicationSet"] = "ApplicationSet"
    metadata: Metadata
    spec: ApplicationSetSpec

    @classmethod
    def from_object(cls, manifest: Mapping[str, Any]) -> ApplicationSet:
        """The set a Kubernetes ``ApplicationSet`` object declares: ``status`` and the
        metadata the API server sets are ignored. InputError naming the set and each
        problem (never a value)."""
        from gitops.apps.load import SERVER_METADATA  # one error format with Applications
        from gitops.apps.load import _problems as problems

        if not isinstance(manifest, Mapping):
            raise InputError("an ApplicationSet object must be a mapping")
        data = {k: v for k, v in manifest.items() if k != "status"}
        metadata = data.get("metadata")
        where = "ApplicationSet"
        if isinstance(metadata, Mapping):
            data["metadata"] = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
            where = f"ApplicationSet {metadata.get('namespace', 'default')}/{metadata.get('name', '?')}"
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InputError(f"{where}: {problems(exc)}") from None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "key", self.key
        yield "generators", [next(iter(entry)) for entry in self.spec.generators]
