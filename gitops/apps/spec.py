"""The ``Application`` document (``gitops.dev/v1alpha1``): what the operator keeps converged.

One pydantic model per part of the YAML, camelCase names as written (snake_case
accepted from Python), unknown fields refused. This module only describes and
validates applications; it never opens a source or a target, and its errors and
``repr()`` never show a value (substitutions may be secrets, URLs may hold tokens).
Loading from files lives in :mod:`gitops.apps.load`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from gitops.apps.durations import Duration
from gitops.model import IgnoreDifference
from gitops.urls import scrub

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "Application",
    "ApplicationSpec",
    "Document",
    "Metadata",
    "RetrySpec",
    "SourceSpec",
    "TargetSpec",
    "WaitSpec",
    "application_json_schema",
    "inventory_name",
    "split_ref",
]

GROUP = "gitops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Application"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VARIABLE = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")  # as gitops.renderers.substitute reads ${VAR}
_LABEL_SCHEMA: dict[str, Any] = {"pattern": _LABEL.pattern, "maxLength": 63}
_DNS_LABEL_RULE = "must be a DNS label (lower-case letters, digits and '-', at most 63 characters)"


def _check_label(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(_DNS_LABEL_RULE)
    return value


def split_ref(ref: str, namespace: str = "default") -> tuple[str, str]:
    """``NAME`` or ``NAMESPACE/NAME`` as ``(namespace, name)``; ``namespace`` for a bare NAME.

    Raises ValueError (not quoting ``ref``) unless both parts are DNS labels.
    """
    ns, _, name = ref.rpartition("/") if "/" in ref else (namespace, "/", ref)
    try:
        return _check_label(ns), _check_label(name)
    except ValueError:
        raise ValueError(f"an application reference is NAME or NAMESPACE/NAME; each {_DNS_LABEL_RULE}") from None


def inventory_name(namespace: str, name: str) -> str:
    """The inventory name of application ``namespace/name``: a DNS label, deterministic.

    ``<namespace>-<name>`` (cut to 52 characters) and the first 10 hex digits of the
    SHA-256 of ``namespace/name``: ``gitops-shop-3f2a…``. The hash keeps two apps apart
    whose joined names coincide (``a-b/c`` and ``a/b-c``), so they never share, and
    prune, each other's objects.
    """
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    return f"{f'{namespace}-{name}'[:52].rstrip('-')}-{digest}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Metadata(_Model):
    """``metadata``: ``name`` and ``namespace`` are DNS labels."""

    name: str = Field(json_schema_extra=_LABEL_SCHEMA)
    namespace: str = Field(default="default", json_schema_extra=_LABEL_SCHEMA)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name", "namespace")
    @classmethod
    def _labels(cls, value: str) -> str:
        return _check_label(value)


class _PluginRef(_Model):
    url: str = Field(min_length=1, description="a source or target URL, as the CLI takes it")
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword options for the plugin (validated when opened)"
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", scrub(self.url)
        yield "options", sorted(self.options)  # names only: values may be credentials


class SourceSpec(_PluginRef):
    """``spec.source``: any source URL (``git+https://…``, ``oci://…``, ``dir:…``) and its options."""


class TargetSpec(_PluginRef):
    """``spec.target``: any target URL (``k8s:``, ``dir:…``, ``mock:``, plugins) and its options."""


class WaitSpec(_Model):
    """``spec.wait``: gate each wave on the health of the previous one, up to ``timeout``."""

    timeout: Duration = Field(default="5m", gt=0, validate_default=True)


class RetrySpec(_Model):
    """``spec.retry``: how a failed reconcile is retried, before waiting for the next interval.

    After the n-th failure in a row (n <= ``limit``), the next attempt comes
    ``backoff * 2**(n-1)`` seconds later, at most ``maxBackoff`` (Argo CD's sync retry).
    """

    limit: int = Field(default=5, ge=0, le=1000)
    backoff: Duration = Field(default="5s", gt=0, validate_default=True)
    max_backoff: Duration = Field(default="3m", gt=0, alias="maxBackoff", validate_default=True)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySpec:
        if self.max_backoff < self.backoff:
            raise ValueError("maxBackoff must not be shorter than backoff")
        return self

    def delay(self, failures: int) -> float | None:
        """Seconds before retrying after ``failures`` failures in a row; None once over ``limit``."""
        if failures < 1 or failures > self.limit:
            return None
        return float(min(self.backoff * 2 ** min(failures - 1, 64), self.max_backoff))


class ApplicationSpec(_Model):
    """``spec``: where from, where to, and how the operator keeps it converged."""

    source: SourceSpec
    target: TargetSpec
    interval: Duration = Field(
        default="1m", gt=0, validate_default=True, description="poll and drift-check period"
    )
    prune: bool = False
    self_heal: bool = Field(
        default=True, alias="selfHeal",
        description="fix drift; false: drift is reported (OutOfSync) until a sync is asked",
    )
    suspend: bool = False
    wait: WaitSpec | None = Field(default=None, description="health gating between waves (absent: none)")
    retry: RetrySpec = Field(default_factory=RetrySpec)
    depends_on: tuple[str, ...] = Field(
        default=(), alias="dependsOn", description="NAME or NAMESPACE/NAME, reconciled first"
    )
    ignore_differences: tuple[IgnoreDifference, ...] = Field(default=(), alias="ignoreDifferences")
    substitute: dict[str, str] = Field(default_factory=dict, description="${VAR} values")

    @field_validator("depends_on")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            split_ref(ref)
        if len(set(value)) != len(value):
            raise ValueError("an application is named twice")
        return value

    @field_validator("substitute")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.match(name):
                raise ValueError(f"variable names must match {_VARIABLE.pattern}")
        return value

    @field_serializer("ignore_differences")
    def _camel_rules(self, rules: tuple[IgnoreDifference, ...]) -> list[dict[str, Any]]:
        """Argo CD's camelCase keys (IgnoreDifference itself serializes snake_case)."""
        out = []
        for rule in rules:
            data: dict[str, Any] = {"group": rule.group, "kind": rule.kind, "name": rule.name,
                                    "namespace": rule.namespace,
                                    "jsonPointers": list(rule.json_pointers),
                                    "jqPathExpressions": list(rule.jq_path_expressions),
                                    "managedFieldsManagers": list(rule.managed_fields_managers)}
            out.append({k: v for k, v in data.items() if v or k == "kind"})
        return out

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (sorted(self.substitute) if key == "substitute" else value)


class Document(_Model):
    """What every ``gitops.dev`` document offers besides its fields: ``name``,
    ``namespace``, ``key`` (``namespace/name``, how files, commands and logs name it) and
    :meth:`to_dict`. Application, ApplicationSet, ImagePolicy and ImageUpdateAutomation
    derive from it."""

    if TYPE_CHECKING:
        metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def to_dict(self) -> dict[str, Any]:
        """The document as YAML/JSON data: camelCase, durations as Go strings."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Application(Document):
    """One declared application: ``apiVersion: gitops.dev/v1alpha1``, ``kind: Application``.

    Build one with :meth:`from_object` (a Kubernetes object, status and server fields
    dropped), :func:`gitops.apps.load_applications` (YAML files) or the constructor.
    :meth:`to_dict` gives the document back, camelCase, durations as Go writes them.
    """

    api_version: Literal["gitops.dev/v1alpha1"] = Field(default="gitops.dev/v1alpha1", alias="apiVersion")
    kind: Literal["Application"] = "Application"
    metadata: Metadata
    spec: ApplicationSpec

    @model_validator(mode="after")
    def _dependencies(self) -> Application:
        keys = self.dependencies
        if self.key in keys:
            raise ValueError("spec.dependsOn: an application cannot depend on itself")
        if len(set(keys)) != len(keys):
            raise ValueError("spec.dependsOn: an application is named twice")
        return self

    @classmethod
    def from_object(cls, manifest: Mapping[str, Any]) -> Application:
        """The application a Kubernetes ``Application`` object declares.

        ``status`` and the fields the API server sets (``uid``, ``resourceVersion``,
        ``generation``, ``managedFields``, ``creationTimestamp``, …) are ignored.
        Raises :class:`~gitops.errors.InputError` naming the object and each problem.
        """
        from gitops.apps.load import validate_object  # one error format for files and objects

        return validate_object(manifest)

    # -- what later code uses ------------------------------------------------------

    @property
    def inventory_name(self) -> str:
        """The DNS-label inventory name of :attr:`key` (see :func:`inventory_name`)."""
        return inventory_name(self.metadata.namespace, self.metadata.name)

    @property
    def dependencies(self) -> tuple[str, ...]:
        """``dependsOn`` as keys (``namespace/name``); a bare NAME is in this app's namespace."""
        return tuple("/".join(split_ref(ref, self.metadata.namespace)) for ref in self.spec.depends_on)

    @property
    def source_options(self) -> dict[str, Any]:
        """Keyword options for ``gitops.open_source(app.spec.source.url, **options)``."""
        return dict(self.spec.source.options)

    @property
    def target_options(self) -> dict[str, Any]:
        """Keyword options for ``gitops.open_target(app.spec.target.url, **options)``."""
        return dict(self.spec.target.options)

    def reconciler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``gitops.Reconciler(source, target, **kwargs)``.

        ``name`` (:attr:`inventory_name`), ``prune``, ``wait`` and ``wait_timeout``,
        ``ignore_differences`` and ``substitute``. ``interval``, ``selfHeal``,
        ``suspend``, ``retry`` and ``dependsOn`` are the operator's to apply, around
        the engine, not inside it.
        """
        wait = self.spec.wait
        kwargs: dict[str, Any] = {
            "name": self.inventory_name,
            "prune": self.spec.prune,
            "wait": wait is not None,
            "ignore_differences": self.spec.ignore_differences,
            "substitute": dict(self.spec.substitute),
        }
        if wait is not None:
            kwargs["wait_timeout"] = wait.timeout
        return kwargs

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "key", self.key
        yield "spec", self.spec


def application_json_schema() -> dict[str, Any]:
    """The JSON Schema of an Application document (camelCase names, durations as strings)."""
    return Application.model_json_schema(by_alias=True, mode="validation")
