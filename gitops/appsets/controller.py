"""ApplicationSets in ``gitops run``: generate, own, roll out, and hand the result to the operator.

:class:`SetController` keeps each declared ApplicationSet evaluated: its generators run at
start, every ``spec.interval`` and when a webhook names a repository the set reads (a git
generator's, or its applications' source); the Applications they give are owned by the
set (:mod:`gitops.appsets.lifecycle`: created, updated, deleted — pruning their
objects through :meth:`Operator.delete` — as ``applicationsSync`` says); with
``strategy.rollingSync`` each one's source is pinned to the revision the rollout gate
(:mod:`gitops.appsets.rollout`) lets it have. The operator is given the static
Applications plus every set's (:meth:`Operator.set_applications`).

A set's rollout state is kept in a file beside the declarations
(``.gitops/appsets/NAMESPACE_NAME.json`` in the folder of the first ``-f`` file): the set
spans many targets, so no one target is its home, and every process given the same
``-f`` finds it — ``gitops rollout status`` reads it and ``gitops rollout resume`` asks
for a resume there while ``gitops run`` runs. Writes are atomic (a rename) under an
``flock``. It holds no credentials: revisions, application keys, messages. Beside it,
what each set owns (:mod:`gitops.appsets.memory`): a folder removed while ``gitops run``
was stopped is rendered again from its remembered parameters at the next start and
given up as the policy says, as if it had disappeared while running.

A failing generator (a repository that cannot be read) never deletes anything: the last
good result is kept and the failure logged once. Nor does an evaluation that gives no
Application at all while the set owns some (an empty listing): only removing the set
deletes all of its Applications.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gitops.apps.load import Declarations
from gitops.apps.spec import Application
from gitops.appsets.lifecycle import decide
from gitops.appsets.memory import OwnedFiles, Records, folder_lock, write_private
from gitops.appsets.rollout import (
    RolloutEvent,
    RolloutState,
    advance,
    commit_of,
    pin_source,
    pinned,
)
from gitops.appsets.spec import ApplicationSet
from gitops.errors import GitopsError, InputError
from gitops.operator.scheduler import Notifier, Operator
from gitops.operator.status import AppStatus
from gitops.operator.webhooks import PushEvent, pushed_to
from gitops.options import opened_with_key
from gitops.plugins import open_source
from gitops.sources.base import Source

__all__ = ["OperatorSink", "OwnershipMemory", "RolloutFiles", "RolloutStore", "SetController",
           "Sink", "git_urls", "resolve_revision", "state_dir"]

log = logging.getLogger("gitops.appsets")

#: seconds between two looks at a rolling set's gate (statuses, a resume asked for)
GATE_TICK = 1.0


class RolloutStore(Protocol):
    """Where each set's rollout state lives (a file for ``gitops run``, the set's status
    subresource in a cluster)."""

    def read(self, appset: ApplicationSet) -> RolloutState | None: ...

    def update(self, appset: ApplicationSet,
               change: Callable[[RolloutState | None], RolloutState]) -> RolloutState: ...


class OwnershipMemory(Protocol):
    """What each set owned, kept across restarts where no Application objects keep it
    (``gitops run``: :class:`~gitops.appsets.memory.OwnedFiles`)."""

    def read(self, appset: ApplicationSet) -> Records: ...

    def write(self, appset: ApplicationSet, records: Mapping[str, Mapping[str, str]]) -> None: ...

    def forget(self, appset: ApplicationSet) -> None: ...


class Sink(Protocol):
    """Where a set's Applications go: a scheduler (``gitops run``), or Application objects."""

    #: publish every tick, not only when something changed (put hand edits back)
    always: bool

    def publish(self, static: Sequence[Application],
                generated: Mapping[str, Mapping[str, Application]]) -> None:
        """Make these the Applications: the static ones, and each set's (by set key)."""

    def give_up(self, app: Application, *, prune: bool) -> None:
        """``app`` is no longer generated: delete it (pruning its objects when ``prune``)."""

    def status(self, app: Application) -> AppStatus | None:
        """The last status of ``app`` (also before it was first published)."""

    def owned(self, appset: ApplicationSet) -> dict[str, Application]:
        """The Applications the set owns already (objects in a cluster; none in a process)."""


class OperatorSink:
    """``gitops run``: the scheduler runs the static Applications plus every set's."""

    always = False

    def __init__(self, operator: Operator) -> None:
        self.operator = operator

    def publish(self, static: Sequence[Application],
                generated: Mapping[str, Mapping[str, Application]]) -> None:
        apps: dict[str, Application] = {app.key: app for app in static}
        for set_key in sorted(generated):
            for key, app in generated[set_key].items():
                if key in apps:
                    log.error("%s: generated Application %s is declared already; ignored",
                              set_key, key, extra={"app": key})
                    continue
                apps[key] = app
        self.operator.set_applications(apps.values())

    def give_up(self, app: Application, *, prune: bool) -> None:
        if prune:
            self.operator.delete(app.key, app)
        else:
            self.operator.remove(app.key)

    def status(self, app: Application) -> AppStatus | None:
        return self.operator.stored_status(app)

    def owned(self, appset: ApplicationSet) -> dict[str, Application]:
        return {}


def state_dir(files: Sequence[str | os.PathLike[str]]) -> Path:
    """Where the rollout states of the sets declared in ``files`` are kept."""
    return Path(files[0]).resolve().parent / ".gitops" / "appsets"


class RolloutFiles:
    """Rollout states as JSON files in one folder, read-modify-written under ``flock``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, appset: ApplicationSet) -> Path:
        return self.folder / f"{appset.namespace}_{appset.name}.json"

    def read(self, appset: ApplicationSet) -> RolloutState | None:
        path = self.path(appset)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"{path}: cannot read the rollout state: {exc.strerror}") from None
        try:
            return RolloutState.model_validate(json.loads(text))
        except ValueError as exc:
            raise InputError(f"{path}: corrupt rollout state: {type(exc).__name__}") from None

    def forget(self, appset: ApplicationSet) -> None:
        """Delete the state of a set no longer declared (under the lock)."""
        with folder_lock(self.folder), contextlib.suppress(FileNotFoundError):
            self.path(appset).unlink()

    def update(self, appset: ApplicationSet,
               change: Callable[[RolloutState | None], RolloutState]) -> RolloutState:
        with folder_lock(self.folder):
            before = self.read(appset)
            after = change(before)
            if after != before:
                write_private(self.path(appset),
                              json.dumps(after.to_dict(), indent=1, sort_keys=True))
            return after


def git_urls(appset: ApplicationSet) -> list[str]:
    """The repository URLs the set's git generators read (nested ones included)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for name, config in value.items():
                if name == "git" and isinstance(config, Mapping) and isinstance(
                        config.get("url"), str):
                    found.append(config["url"])
                walk(config)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(appset.spec.generators)
    return found


def resolve_revision(appset: ApplicationSet, apps: Sequence[Application],
                     sources: dict[str, Source]) -> str:
    """The one revision (a commit) the sources of ``apps`` are at now; ``sources`` keeps
    the opened sources between calls. InputError naming the set when they disagree."""
    revisions: dict[str, str] = {}
    for app in apps:
        url = app.spec.source.url.partition("#")[0]
        key = opened_with_key(url, app.source_options)
        source = sources.get(key)
        if source is None:
            source = sources[key] = open_source(url, **app.source_options)
        if key not in revisions:
            revisions[key] = source.resolve()
    commits = {commit_of(r) or r for r in revisions.values()}
    if len(commits) > 1:
        raise InputError(f"ApplicationSet {appset.key}: rollingSync rolls out one revision; "
                         "the generated Applications' sources are at several (give them one "
                         "repository and ref)")
    return next(iter(revisions.values()), "")


@dataclass
class _Set:
    appset: ApplicationSet
    context: Any = None
    generated: dict[str, Application] | None = None
    owned: dict[str, Application] = field(default_factory=dict)
    final: dict[str, Application] = field(default_factory=dict)
    revision: str = ""
    sources: dict[str, Source] = field(default_factory=dict)
    due: float = 0.0
    regenerate: bool = True
    error: str = ""
    seeded: bool = False
    #: the generators gave nothing while the set owned Applications (said once)
    empty: bool = False
    #: generated keys another Application has already (said once)
    clash: list[str] = field(default_factory=list)
    #: a rolling set's Applications no longer generated, deleted once the rollout of the
    #: revision that dropped them completes (until then they run as they were)
    leaving: dict[str, Application] = field(default_factory=dict)
    #: the parameters (those the template uses) each generated Application came from
    parameters: Records = field(default_factory=dict)
    #: the parameters of each owned (or leaving) Application, and what the memory holds
    records: Records = field(default_factory=dict)
    remembered: Records = field(default_factory=dict)

    def close(self) -> None:
        for source in self.sources.values():
            with contextlib.suppress(Exception):
                source.close()
        self.sources.clear()
        if self.context is not None:
            with contextlib.suppress(Exception):
                self.context.cache.close()


class SetController:
    """Keeps declared ApplicationSets evaluated and the operator's applications in step."""

    def __init__(self, sink: Sink | Operator, store: RolloutStore, *,
                 memory: OwnershipMemory | None = None,
                 notifier: Notifier | None = None, tick: float = GATE_TICK,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sink: Sink = OperatorSink(sink) if isinstance(sink, Operator) else sink
        self._store = store
        self._memory = memory
        self._notifier = notifier
        self._tick = tick
        self._clock = clock
        self._static: tuple[Application, ...] = ()
        self._sets: dict[str, _Set] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False

    @classmethod
    def for_runtime(cls, runtime: Any, args: Any, notifier: Notifier | None) -> SetController:
        """The controller of ``gitops run`` (its operator; rollout states and what each set
        owned beside its ``-f`` files)."""
        folder = state_dir(args.file)
        return cls(OperatorSink(runtime.operator), RolloutFiles(folder),
                   memory=OwnedFiles(folder), notifier=notifier)

    # -- what the files declare ----------------------------------------------------------

    def apply(self, static: Sequence[Application], appsets: Sequence[ApplicationSet]) -> None:
        """Take the declared Applications and ApplicationSets: every set is evaluated now
        (a set no longer declared gives up its Applications as its policy says) and the
        operator gets the result."""
        with self._lock:
            self._static = tuple(static)
            wanted = {s.key: s for s in appsets}
            for key in [k for k in self._sets if k not in wanted]:
                self._drop(self._sets.pop(key))
            for key, appset in wanted.items():
                entry = self._sets.get(key)
                if entry is None:
                    self._sets[key] = _Set(appset)
                elif entry.appset != appset:
                    # what its generators and revision checks opened was for the old spec
                    # (a git generator's credentials rotated, its URL moved): closed
                    entry.close()
                    entry.appset, entry.regenerate = appset, True
            for key in sorted(self._sets):  # every set's result is known before any decides:
                self._regenerate(self._sets[key])  # a remembered key another set generates
            for key in sorted(self._sets):  # now is not deleted
                self._evaluate(self._sets[key], regenerate=False)
            self._publish()
        self._start()

    def release(self, key: str) -> None:
        """Stop evaluating set ``key`` without giving up its Applications (another replica
        evaluates it now)."""
        with self._lock:
            entry = self._sets.pop(key, None)
            if entry is not None:
                entry.close()

    def pushed(self, event: PushEvent) -> list[str]:
        """Evaluate again, at once, the sets that read the pushed repository; their keys."""
        with self._lock:
            keys = [key for key, entry in self._sets.items() if any(
                pushed_to(event, url, None) for url in self._urls(entry))]
            for key in keys:
                self._sets[key].regenerate = True
            self._wake.notify_all()
        return sorted(keys)

    def _urls(self, entry: _Set) -> list[str]:
        apps = entry.generated.values() if entry.generated else ()
        return [*git_urls(entry.appset), *(app.spec.source.url for app in apps)]

    def applications(self, key: str) -> dict[str, Application]:
        """The Applications set ``key`` gives the operator now (pinned, when rolling)."""
        with self._lock:
            entry = self._sets.get(key)
            return dict(entry.final) if entry is not None else {}

    # -- the loop ------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._loop, name="gitops-appsets",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop evaluating; close what the generators and revision checks opened."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(30)
        with self._lock:
            for entry in self._sets.values():
                entry.close()

    def _loop(self) -> None:
        with self._lock:
            while not self._stopping:
                now = self._clock()
                changed = False
                for entry in list(self._sets.values()):
                    due = entry.regenerate or entry.due <= now
                    if due or _rolling(entry.appset):
                        try:
                            changed |= self._evaluate(entry, regenerate=due)
                        except Exception:  # never the end of the loop: every set waits on it
                            log.exception("%s: evaluation failed unexpectedly", entry.appset.key,
                                          extra={"app": entry.appset.key})
                if changed or self._sink.always:
                    self._publish()
                waits = [e.due - self._clock() for e in self._sets.values()]
                if self._sink.always or any(_rolling(e.appset) for e in self._sets.values()):
                    waits.append(self._tick)
                self._wake.wait(max(0.01, min(waits)) if waits else None)

    # -- one set -------------------------------------------------------------------------

    def _evaluate(self, entry: _Set, *, regenerate: bool) -> bool:
        """Evaluate one set (lock held); whether its Applications changed."""
        appset = entry.appset
        if regenerate:
            self._regenerate(entry)
        if entry.generated is None:
            return False
        if not entry.seeded:  # what it owned before this process (Application objects)
            try:
                entry.owned = {**self._sink.owned(appset), **self._recall(entry), **entry.owned}
            except GitopsError as exc:
                log.error("%s: %s", appset.key, exc, extra={"app": appset.key})
                return False
            entry.seeded = True
        generated = self._unclaimed(entry)
        ownership = decide(appset.spec.sync_policy, entry.owned, generated)
        if ownership.delete and not generated:
            # nothing at all: an empty listing (a ref moved to an unrelated commit, a
            # namespace without cluster Secrets) is far likelier than a fleet meant to go
            if not entry.empty:
                message = (f"ApplicationSet {appset.key}: the generators gave no Application; "
                           f"the {len(ownership.delete)} it owns are kept (delete the "
                           "ApplicationSet to delete them)")
                log.error("%s", message, extra={"app": appset.key, "reason": "GenerateFailed"})
                self._notify(appset.key, "GenerateFailed", "", message)
            entry.empty = True
            if entry.final or _rolling(appset):
                return False
            # remembered from before a restart: run as they were, as while running (a
            # rolling set's wait for their pins, which the next good evaluation gives)
            entry.final = dict(entry.owned)
            return True
        entry.empty = False
        delete = list(ownership.delete)
        if _rolling(appset):  # a deletion is a change of the new revision too: gated
            entry.leaving.update((app.key, app) for app in delete)
            delete = []
        for key in [k for k in entry.leaving if k in ownership.keep]:
            del entry.leaving[key]  # generated again
        for app in delete:
            self._give_up(app, prune=ownership.prune)
        entry.owned = dict(ownership.keep)
        final = self._rolled_out(entry) if _rolling(appset) else dict(entry.owned)
        self._remember(entry)
        if final == entry.final:
            return bool(delete)
        entry.final = final
        return True

    def _regenerate(self, entry: _Set) -> None:
        entry.regenerate = False
        entry.due = self._clock() + float(entry.appset.spec.interval)
        self._generate(entry)

    def _recall(self, entry: _Set) -> dict[str, Application]:
        """The Applications the set owned when the process last stopped that it does not
        generate now, rendered again from their remembered parameters with the current
        template (lock held; once, when the set is first evaluated). A key a declared
        Application or another set has now, or a record the template cannot render any
        more, is forgotten: never deleted, its objects stay."""
        from gitops.appsets.generate import render_application

        appset = entry.appset
        if self._memory is None:
            return {}
        try:
            entry.remembered = self._memory.read(appset)
        except GitopsError as exc:
            log.error("%s: %s; ignored (what it recorded is not deleted)", appset.key, exc,
                      extra={"app": appset.key})
            return {}
        assert entry.generated is not None
        taken = {app.key for app in self._static}
        for other in self._sets.values():
            if other is not entry:
                taken.update(other.owned, other.generated or ())
        recalled: dict[str, Application] = {}
        for key, params in sorted(entry.remembered.items()):
            if key in entry.generated or key in entry.owned:
                continue
            if key in taken:
                log.warning("%s: %s, which it owned before, is declared elsewhere now; "
                            "forgotten, not deleted", appset.key, key, extra={"app": key})
                continue
            try:
                app = render_application(appset, params)
                if app.key != key:
                    raise InputError(f"ApplicationSet {appset.key}: the template names it "
                                     f"{app.key} now")
            except InputError as exc:
                log.error("%s: %s, which it owned before, cannot be rendered again: %s; "
                          "forgotten, its objects are kept", appset.key, key, exc,
                          extra={"app": key})
                continue
            recalled[key] = app
            entry.records[key] = params
        return recalled

    def _remember(self, entry: _Set) -> None:
        """Keep the parameters of what the set owns now (its own and the leaving ones), in
        the memory when they changed (lock held)."""
        generated = entry.generated or {}
        records: Records = {}
        for key, app in [*entry.owned.items(), *entry.leaving.items()]:
            params = (entry.parameters.get(key) if generated.get(key) is app
                      else entry.records.get(key))
            if params is not None:
                records[key] = params
        entry.records = records
        if self._memory is None or records == entry.remembered:
            return
        try:
            self._memory.write(entry.appset, records)
        except OSError as exc:  # tried again at the next evaluation
            log.error("%s: cannot record what it owns: %s", entry.appset.key, exc.strerror,
                      extra={"app": entry.appset.key})
            return
        entry.remembered = records

    def _unclaimed(self, entry: _Set) -> dict[str, Application]:
        """The set's generated Applications but those whose key a declared Application or
        another set's has (logged once): a set never owns, so never deletes and prunes,
        an Application that is not its own."""
        assert entry.generated is not None
        taken = {app.key for app in self._static}
        taken.update(k for other in self._sets.values() if other is not entry for k in other.owned)
        clash = sorted(taken & entry.generated.keys())
        entry.owned = {k: app for k, app in entry.owned.items() if k not in taken}
        if clash != entry.clash and clash:
            log.error("%s: generated Application %s is declared already (in the files or by "
                      "another ApplicationSet); ignored", entry.appset.key, ", ".join(clash),
                      extra={"app": entry.appset.key})
        entry.clash = clash
        return {k: app for k, app in entry.generated.items() if k not in taken}

    def _generate(self, entry: _Set) -> None:
        from gitops.appsets.generate import generate, template_parameters
        from gitops.appsets.generators.base import GeneratorContext

        appset = entry.appset
        if entry.context is None:
            entry.context = GeneratorContext()
        try:
            generated = generate(appset, context=entry.context)
            if _rolling(appset):
                if appset.spec.sync_policy.applications_sync in ("create-only", "create-delete"):
                    raise InputError(f"ApplicationSet {appset.key}: rollingSync moves each "
                                     "Application's revision; it needs applicationsSync sync "
                                     "or create-update")
                entry.revision = resolve_revision(appset, generated.applications, entry.sources)
                for app in generated.applications:  # each must be pinnable: said once, here
                    pin_source(app, entry.revision, where=f"ApplicationSet {appset.key}")
        except GitopsError as exc:
            if str(exc) != entry.error:
                log.error("%s: not evaluated: %s", appset.key, exc,
                          extra={"app": appset.key, "reason": "GenerateFailed"})
                self._notify(appset.key, "GenerateFailed", "", str(exc))
            entry.error = str(exc)
            return
        except Exception as exc:  # a generator plugin's bug: reported, never fatal
            log.exception("%s: generators failed unexpectedly", appset.key)
            entry.error = f"{type(exc).__name__}: {exc}"
            return
        entry.error = ""
        entry.generated = {app.key: app for app in generated.applications}
        used = template_parameters(appset)  # only those: a cluster's annotations are not kept
        entry.parameters = {app.key: {k: v for k, v in params.items() if k in used}
                            for app, params in zip(generated.applications, generated.parameters,
                                                   strict=True)}

    def _rolled_out(self, entry: _Set) -> dict[str, Application]:
        """The owned Applications pinned as the rollout gate says (state saved, events sent)."""
        appset = entry.appset
        strategy = appset.spec.strategy
        assert strategy is not None and strategy.rolling_sync is not None
        steps = strategy.rolling_sync.steps
        labels = {key: app.metadata.labels for key, app in entry.owned.items()}
        statuses = _Statuses(entry.owned, self._status)  # read only for those the gate asks
        events: list[RolloutEvent] = []
        leaving = dict(entry.leaving)

        def change(before: RolloutState | None) -> RolloutState:
            after, found = advance(appset.key, steps, labels, entry.revision,
                                   before or RolloutState(), statuses)
            kept = {k: pin for k, pin in (before.pins if before else {}).items() if k in leaving}
            if kept:  # those leaving keep running where they were
                after = after.model_copy(update={"pins": {**after.pins, **kept}})
            events.extend(found)
            if before is not None and after.model_copy(update={"updated": before.updated}) \
                    == before:
                return before  # nothing changed: not written
            return after

        try:
            state = self._store.update(appset, change)
        except GitopsError as exc:
            log.error("%s: rollout state: %s", appset.key, exc, extra={"app": appset.key})
            return dict(entry.final)
        for event in events:
            self._notify(appset.key, event.reason, state.revision, event.message)
        try:
            final = pinned(appset.key, entry.owned.values(), state)
            running = pinned(appset.key, leaving.values(), state)
        except InputError as exc:  # checked when generated: not expected here
            log.error("%s", exc, extra={"app": appset.key})
            return dict(entry.final)
        prune = not appset.spec.sync_policy.preserve_resources_on_deletion
        for key, app in leaving.items():
            if state.complete or key not in running:  # its turn came, or it never ran
                del entry.leaving[key]
                self._give_up(app, prune=prune)
            else:
                final[key] = running[key]
        return final

    def _status(self, app: Application) -> AppStatus | None:
        """``app``'s status; unknown (None: the rollout waits) when it cannot be read, so a
        status store that is down neither halts nor advances a rollout."""
        try:
            return self._sink.status(app)
        except Exception as exc:
            log.warning("%s: cannot read the status: %s", app.key, exc, extra={"app": app.key})
            return None

    def _give_up(self, app: Application, *, prune: bool) -> None:
        """An Application the set no longer generates: deleted (pruned) or just dropped."""
        log.info("%s: no longer generated: %s", app.key,
                 "deleting it and its objects" if prune else "deleting it, keeping its objects",
                 extra={"app": app.key, "reason": "ApplicationRemoved"})
        self._sink.give_up(app, prune=prune)

    def _drop(self, entry: _Set) -> None:
        """A set no longer declared: its Applications go as its policy deletes them."""
        ownership = decide(entry.appset.spec.sync_policy, entry.owned, {})
        for app in [*ownership.delete, *entry.leaving.values()]:
            self._give_up(app, prune=ownership.prune)
        entry.close()
        forget = getattr(self._store, "forget", None)  # the file of gitops run; a cluster's
        if forget is not None:                          # goes with the set's object
            try:
                forget(entry.appset)
            except OSError as exc:
                log.warning("%s: cannot delete its rollout state: %s", entry.appset.key, exc)
        if self._memory is not None:
            try:
                self._memory.forget(entry.appset)
            except OSError as exc:
                log.warning("%s: cannot delete what it owned: %s", entry.appset.key, exc)

    def _publish(self) -> None:
        """Give the sink the static Applications and every set's (lock held)."""
        try:
            self._sink.publish(self._static, {k: e.final for k, e in self._sets.items()})
        except GitopsError as exc:  # a cluster that refused: the next tick tries again
            log.error("publishing the generated Applications failed: %s", exc)

    def _notify(self, key: str, reason: str, revision: str, message: str) -> None:
        log.log(logging.WARNING if reason in ("RolloutHalted", "GenerateFailed")
                else logging.INFO, "%s: %s: %s", key, reason, message,
                extra={"app": key, "reason": reason, "revision": revision})
        if self._notifier is not None:
            try:
                self._notifier.notify(key, reason, revision, message)
            except Exception:
                log.exception("notification failed")


class _Statuses(Mapping[str, "AppStatus | None"]):
    """The statuses of a set's Applications, each read when first asked for: the gate asks
    only for those pinned at the revision it rolls out (not the held-back ones)."""

    def __init__(self, apps: Mapping[str, Application],
                 read: Callable[[Application], AppStatus | None]) -> None:
        self._apps, self._read = apps, read
        self._seen: dict[str, AppStatus | None] = {}

    def __getitem__(self, key: str) -> AppStatus | None:
        if key not in self._seen:
            self._seen[key] = self._read(self._apps[key])
        return self._seen[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._apps)

    def __len__(self) -> int:
        return len(self._apps)


def _rolling(appset: ApplicationSet) -> bool:
    return appset.spec.strategy is not None and appset.spec.strategy.rolling


def rollout_view(declared: Declarations, files: Sequence[str | os.PathLike[str]]
                 ) -> tuple[list[Application], list[tuple[str, str]]]:
    """What one-shot commands (``gitops run --once``, ``sync``, ``status``) may see of the
    files: static and generated Applications, those of a rolling set pinned as its
    rollout state (kept by ``gitops run``) says, and ``(key, why)`` of those it holds
    back (all of a rolling set whose rollout ``gitops run`` has not started yet)."""
    from gitops.appsets.generate import OWNER_ANNOTATION, declared_applications
    from gitops.appsets.rollout import pinned

    apps = declared_applications(declared)
    rolling = [s for s in declared.of("ApplicationSet") if _rolling(s)]
    if not rolling:
        return apps, []
    store = RolloutFiles(state_dir(files))
    allowed: dict[str, dict[str, Application]] = {}
    for appset in rolling:
        state = store.read(appset)
        members = [a for a in apps if a.metadata.annotations.get(OWNER_ANNOTATION) == appset.key]
        allowed[appset.key] = pinned(appset.key, members, state) if state is not None else {}
    shown: list[Application] = []
    held: list[tuple[str, str]] = []
    for app in apps:
        owner = app.metadata.annotations.get(OWNER_ANNOTATION)
        if owner not in allowed:
            shown.append(app)
        elif app.key in allowed[owner]:
            shown.append(allowed[owner][app.key])
        else:
            held.append((app.key, f"held by the rollout of ApplicationSet {owner}: its step "
                                  "has not come (gitops rollout status)"))
    return shown, held
