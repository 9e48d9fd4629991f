"""What ``gitops status``, ``history``, ``sync``, ``rollback``, ``suspend`` and ``resume`` do.

Each works on a :class:`Catalog`: where applications are declared and where their
status lives. :class:`FileCatalog` reads YAML files (status in each target's record),
so the commands work whether or not a ``gitops run`` process is running: a sync or a
rollback runs here, under the target's lock, and the running process sees the new
status at its next reconcile. The cluster catalog (``--kubeconfig``) is in
:mod:`gitops.operator.cluster`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gitops.apps.spec import Application, split_ref
from gitops.appsets.sharing import SharedSources
from gitops.errors import GitopsError, InputError
from gitops.operator.files import ApplicationFiles, TargetStatusStore
from gitops.operator.reconcile import AppReconciler, ReconcileOutcome
from gitops.operator.status import AppStatus, StatusStore, SyncRecord, Trigger
from gitops.plugins import open_source

__all__ = [
    "Catalog",
    "FileCatalog",
    "find_application",
    "resolve_revision",
    "rollback",
    "run_once",
    "set_suspended",
    "sync_now",
]


class Catalog(Protocol):
    """Where applications are declared and their status kept."""

    @property
    def store(self) -> StatusStore: ...

    def applications(self) -> list[Application]: ...

    def suspend(self, app: Application, suspended: bool, reason: str) -> None:
        """Suspend (or resume) automated reconciles of ``app``."""

    def invalid(self) -> list[tuple[str, str]]:
        """``(namespace/name, problem)`` of declared applications that are not valid."""

    def close(self) -> None: ...


class FileCatalog:
    """Applications from YAML files; status in each application's target."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.files = ApplicationFiles(paths)
        self._store = TargetStatusStore()
        self._apps: list[Application] | None = None
        self._held: list[tuple[str, str]] = []

    @property
    def store(self) -> TargetStatusStore:
        return self._store

    def applications(self) -> list[Application]:
        """The files' Applications, then those their ApplicationSets generate; those of a
        rolling set as its rollout lets them run (:meth:`held` lists the others)."""
        if self._apps is None:
            from gitops.appsets.controller import rollout_view

            self._apps, self._held = rollout_view(self.files.load_declarations(),
                                                  self.files.paths)
        return list(self._apps)

    def held(self) -> list[tuple[str, str]]:
        """``(namespace/name, why)`` of each generated Application a rollout holds back:
        a one-shot command (``run --once``, ``sync``) must not let it skip the gate."""
        self.applications()
        return list(self._held)

    def suspend(self, app: Application, suspended: bool, reason: str) -> None:
        if not suspended and app.spec.suspend:
            raise InputError(
                f"{app.key}: spec.suspend is true in its file; set it to false there to resume"
            )
        self._store.update(app, lambda status: (status or AppStatus()).model_copy(update={
            "suspended": suspended, "suspended_reason": reason if suspended else "",
        }))

    def invalid(self) -> list[tuple[str, str]]:
        return []  # an invalid file does not load at all

    def close(self) -> None:
        self._store.close()


def held_back(catalog: Catalog) -> list[tuple[str, str]]:
    """``(namespace/name, why)`` of generated Applications a rollout holds back (file
    catalogs; in a cluster the controller gates them)."""
    held = getattr(catalog, "held", None)
    return list(held()) if callable(held) else []


def find_application(catalog: Catalog, ref: str) -> Application:
    """The application ``NAME`` or ``NAMESPACE/NAME`` names; InputError if none or several."""
    apps = catalog.applications()
    try:
        namespace, name = split_ref(ref) if "/" in ref else ("", split_ref(ref)[1])
    except ValueError as exc:
        raise InputError(f"{ref!r}: {exc}") from None
    found = [a for a in apps if a.name == name and (not namespace or a.namespace == namespace)]
    if not found:
        for key, why in held_back(catalog):
            held_ns, _, held_name = key.partition("/")
            if held_name == name and (not namespace or held_ns == namespace):
                raise InputError(f"{key}: {why}")
        known = ", ".join(sorted(a.key for a in apps)) or "none"
        raise InputError(f"no application {ref!r} (applications: {known})")
    if len(found) > 1:
        raise InputError(f"{ref!r} names several applications "
                         f"({', '.join(a.key for a in found)}); write NAMESPACE/NAME")
    return found[0]


def sync_now(catalog: Catalog, app: Application, *, revision: str | None = None,
             trigger: Trigger = "manual",
             sources: SharedSources | None = None) -> ReconcileOutcome:
    """Reconcile ``app`` here and now, once (a person asked: whatever ``selfHeal`` says);
    ``sources`` shares one Git source per repository between such calls."""
    runner = AppReconciler(app, catalog.store,
                           sources=sources.open_source if sources is not None else None)
    try:
        return runner.reconcile(trigger, revision=revision)
    finally:
        runner.close()


def resolve_revision(status: AppStatus | None, revision: str) -> str:
    """The full revision a history entry records for ``revision`` (a prefix or a short SHA
    is enough when exactly one entry matches), else ``revision`` as given."""
    history: tuple[SyncRecord, ...] = status.history if status is not None else ()
    revisions = {r.revision for r in history}
    if revision in revisions:
        return revision
    matches = {r for r in revisions
               if r.startswith(revision) or r.rpartition(":")[2].startswith(revision)}
    return matches.pop() if len(matches) == 1 else revision


def run_once(catalog: Catalog) -> list[tuple[Application, ReconcileOutcome | None]]:
    """Reconcile every application once, dependencies first (``gitops run --once``).

    An application whose dependency is not Ready after its own reconcile is not
    reconciled (its outcome is None); suspended applications are skipped the same way.
    """
    apps = {a.key: a for a in catalog.applications()}
    done: dict[str, ReconcileOutcome | None] = {}
    order: list[Application] = []
    visiting: set[str] = set()

    def visit(app: Application) -> None:
        if app.key in visiting or app in order:
            return
        visiting.add(app.key)
        for dep in app.dependencies:
            if dep in apps:
                visit(apps[dep])
        order.append(app)

    for app in apps.values():
        visit(app)
    sources = SharedSources()  # one round: each repository is asked for its refs once
    try:
        _reconcile_in_order(catalog, order, done, sources)
    finally:
        sources.close()
    return [(app, done[app.key]) for app in order]


def _reconcile_in_order(catalog: Catalog, order: list[Application],
                        done: dict[str, ReconcileOutcome | None],
                        sources: SharedSources) -> None:
    for app in order:
        try:
            status = catalog.store.read(app)
            blocked = [d for d in app.dependencies
                       if (o := done.get(d)) is None or not o.status.ready]
            if blocked or app.spec.suspend or (status is not None and status.suspended):
                done[app.key] = None
                continue
            done[app.key] = sync_now(catalog, app, trigger="start", sources=sources)
        except GitopsError as exc:  # its status cannot be read or kept: the others go on
            done[app.key] = ReconcileOutcome(
                AppStatus(message=f"cannot keep its status: {exc}"), failed=True)


def rollback(catalog: Catalog, app: Application, revision: str, *,
             force: bool = False) -> ReconcileOutcome:
    """Apply an earlier ``revision`` of ``app`` and suspend its automation.

    Refused (InputError) when ``selfHeal`` is on unless ``force``: automated sync would
    put the newer revision back (Argo CD refuses the same way). The revision is fetched
    first: one the source cannot provide is an InputError and nothing is written.
    Automation is suspended *before* the rollback writes anything (a running operator
    must not heal it back); if the rollback fails, the suspension is undone.
    """
    if app.spec.self_heal and not force:
        raise InputError(
            f"{app.key}: selfHeal is on, so automation would undo a rollback; pass --force "
            "to roll back and suspend automation, or set selfHeal: false"
        )
    before = catalog.store.read(app)
    wanted = resolve_revision(before, revision)
    _check_fetchable(app, wanted)
    was_suspended = before is not None and before.suspended
    set_suspended(catalog, app, True, f"rolled back to {wanted}")
    try:
        outcome = sync_now(catalog, app, revision=wanted, trigger="rollback")
    except BaseException:
        if not was_suspended:
            set_suspended(catalog, app, False)
        raise
    if outcome.failed and not was_suspended:
        set_suspended(catalog, app, False)
    return outcome


def _check_fetchable(app: Application, revision: str) -> None:
    """InputError unless the application's source can provide ``revision``."""
    try:
        with open_source(app.spec.source.url, **app.source_options) as source:
            source.fetch(revision)
    except GitopsError as exc:
        raise InputError(f"{app.key}: cannot roll back to {revision}: {exc}") from None


def set_suspended(catalog: Catalog, app: Application, suspended: bool, reason: str = "") -> None:
    """Suspend or resume automated reconciles of ``app`` (``gitops suspend``/``resume``)."""
    catalog.suspend(app, suspended, reason or ("suspended by gitops suspend" if suspended else ""))
