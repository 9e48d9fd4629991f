"""Generating: an ApplicationSet's generators and template in, its Applications out.

:func:`generate` evaluates ``spec.generators`` (each through its plugin in the
entry-point group ``gitops.generators``), fills the template with every parameter set
and validates each result as an :class:`~gitops.apps.spec.Application`, owned by the
set (annotation :data:`OWNER_ANNOTATION`: ``NAMESPACE/NAME`` of the set). Several
top-level generators add up, in order, as in Argo CD. Nothing is applied, and no
generated Application's source or target is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops.apps.load import Declarations, validate_object
from gitops.apps.spec import Application
from gitops.appsets.generators.base import Generator, GeneratorContext, ParameterSet
from gitops.appsets.spec import ApplicationSet
from gitops.appsets.template import PLACEHOLDER, Parameters, flatten, render
from gitops.errors import InputError, PluginError
from gitops.plugins import get_plugin, list_plugins

__all__ = [
    "BUILTIN_GENERATORS",
    "OWNER_ANNOTATION",
    "GeneratedSet",
    "declared_applications",
    "generate",
    "generator_class",
    "render_application",
    "run_generator",
    "template_parameters",
]

#: the annotation on every generated Application: ``NAMESPACE/NAME`` of its set
OWNER_ANNOTATION = "gitops.dev/application-set"

#: the built-in generators, also registered as entry points in pyproject.toml; used when
#: gitops runs from a source tree whose entry points are not installed
BUILTIN_GENERATORS: dict[str, str] = {
    "list": "gitops.appsets.generators.listgen:ListGenerator",
    "git": "gitops.appsets.generators.git:GitGenerator",
    "clusters": "gitops.appsets.generators.clusters:ClustersGenerator",
    "matrix": "gitops.appsets.generators.matrix:MatrixGenerator",
    "merge": "gitops.appsets.generators.merge:MergeGenerator",
}


@dataclass(frozen=True)
class GeneratedSet:
    """What one evaluation of a set gave.

    ``applications`` in generator order; ``parameters[i]`` the (flat) parameter set of
    ``applications[i]``; ``revisions``: what the generators read at which revision
    (``{source URL: revision}``, e.g. the git generator's commit).
    """

    appset: str
    applications: tuple[Application, ...] = ()
    parameters: tuple[Mapping[str, str], ...] = ()
    revisions: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """``namespace/name`` of each generated Application."""
        return tuple(app.key for app in self.applications)


def generator_class(name: str) -> type[Generator]:
    """The generator plugin registered as ``name`` (PluginError listing what is installed).

    An installed entry point (or a run-time registration) wins; a built-in name without
    one (gitops run from a source tree) falls back to :data:`BUILTIN_GENERATORS`.
    """
    try:
        cls: type[Generator] = get_plugin("generator", name)
        return cls
    except PluginError:
        registered = any(i.kind == "generator" and i.name == name for i in list_plugins())
        if registered or name not in BUILTIN_GENERATORS:
            raise
    from gitops.plugins import PluginInfo

    builtin: type[Generator] = PluginInfo("generator", name, BUILTIN_GENERATORS[name],
                                          "gitops (built-in)").load()
    return builtin


def run_generator(entry: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
    """Evaluate one ``{name: config}`` entry; errors name the set and ``context.field_path``."""
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise context.error("a generator is a mapping with one key, the generator's name")
    ((name, config),) = entry.items()
    try:
        cls = generator_class(str(name))
    except PluginError as exc:
        raise context.error(str(exc)) from None
    sets = cls().generate(config if config is not None else {}, context.at(f"{context.field_path}.{name}"))
    if not isinstance(sets, list) or not all(isinstance(p, Mapping) for p in sets):
        raise context.error(f"generator {name!r} did not return a list of parameter mappings")
    return sets


def _used(value: Any) -> set[str]:
    """The parameter names the placeholders of ``value`` (template data) name."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(_used(item) for item in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_used(item) for item in value))
    return set()


def _shown(params: Parameters, used: set[str]) -> str:
    """The parameters the template uses, for an error: only those, as the others (a cluster
    Secret's annotations, say) may hold what must never be shown."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(params.items()) if k in used) + "}"


def _template_metadata(appset: ApplicationSet) -> tuple[dict[str, Any], set[str]]:
    """The template's metadata (namespace defaulted) and the parameter names it uses."""
    template = appset.spec.template
    metadata = template.metadata.model_dump(by_alias=True, exclude_none=True)
    metadata.setdefault("namespace", appset.namespace)
    return metadata, _used(metadata) | _used(template.spec)


def _fill(appset: ApplicationSet, metadata: Mapping[str, Any], used: set[str],
          params: Parameters, *, where: str) -> Application:
    filled_meta = render(metadata, params, where=where, field="spec.template.metadata")
    filled_spec = render(appset.spec.template.spec, params, where=where, field="spec.template.spec")
    filled_meta["annotations"] = {**filled_meta.get("annotations", {}),
                                  OWNER_ANNOTATION: appset.key}
    document = {"apiVersion": appset.api_version, "kind": "Application",
                "metadata": filled_meta, "spec": filled_spec}
    try:
        return validate_object(document)
    except InputError as exc:
        raise InputError(f"{where}: generated {exc} (parameters {_shown(params, used)})") from None


def template_parameters(appset: ApplicationSet) -> set[str]:
    """The parameter names ``appset``'s template uses (its metadata and spec)."""
    return _template_metadata(appset)[1]


def render_application(appset: ApplicationSet, params: Parameters) -> Application:
    """The Application ``appset``'s template gives for one (flat) parameter set, as
    :func:`generate` renders it; InputError naming the set for an unknown parameter or an
    invalid result."""
    metadata, used = _template_metadata(appset)
    return _fill(appset, metadata, used, params, where=f"ApplicationSet {appset.key}")


def generate(appset: ApplicationSet, *, context: GeneratorContext | None = None) -> GeneratedSet:
    """The Applications ``appset`` generates now, in a stable order.

    ``context`` may be kept across calls (its cache makes re-evaluation cheap). Raises
    InputError naming the ApplicationSet for a bad generator config, an unknown
    parameter in the template (naming the field), a generated Application that is
    invalid, or two parameter sets giving the same Application name (naming both);
    a generator's source errors (a Git repository that cannot be read) as they come.
    """
    ctx = (context or GeneratorContext()).for_set(appset.key)
    metadata, used = _template_metadata(appset)
    apps: list[Application] = []
    params_of: list[Mapping[str, str]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(appset.spec.generators):
        for raw in run_generator(entry, ctx.at(f"spec.generators[{index}]")):
            params = flatten(raw)
            app = _fill(appset, metadata, used, params, where=ctx.where)
            first = seen.get(app.key)
            if first is not None:
                raise InputError(f"{ctx.where}: parameter sets {_shown(params_of[first], used)} and "
                                 f"{_shown(params, used)} both generate Application {app.key}")
            seen[app.key] = len(apps)
            apps.append(app)
            params_of.append(params)
    return GeneratedSet(appset=appset.key, applications=tuple(apps), parameters=tuple(params_of),
                        revisions=dict(ctx.revisions))


def declared_applications(declared: Declarations, *, context: GeneratorContext | None = None
                          ) -> list[Application]:
    """The Applications files declare: the static ones, then each ApplicationSet's generated ones.

    A generated Application with the key of another Application (static or from
    another set) is an InputError naming both. Without ``context``, a fresh one is used
    and closed (its open sources) before returning.
    """
    ctx = context or GeneratorContext()
    try:
        apps = list(declared.applications)
        owner = {app.key: "declared in the files" for app in apps}
        for appset in declared.of("ApplicationSet"):
            for app in generate(appset, context=ctx).applications:
                if app.key in owner:
                    raise InputError(f"ApplicationSet {appset.key} generates Application {app.key}, "
                                     f"which is also {owner[app.key]}")
                owner[app.key] = f"generated by ApplicationSet {appset.key}"
                apps.append(app)
        return apps
    finally:
        if context is None:
            ctx.cache.close()
