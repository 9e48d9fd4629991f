"""Progressive rollout of an ApplicationSet (``spec.strategy.rollingSync``), gated on the revision.

The set resolves its applications' source revision (the commit) itself and pins each
generated Application's source to a revision (:func:`pin_source`: ``@<40-hex commit>``).
:func:`advance` moves those pins: a new revision reaches the Applications of step N+1
only once every Application of step N is Synced and Healthy *at that revision*;
``maxUpdate`` caps how many of a step move at once. A failed sync or a Degraded
Application at the new revision halts the rollout: no pin moves any more, so later
steps never pick up the commit, whatever their interval. The halt stays until someone
resumes (the halting Application is then accepted at that revision) or a newer commit
starts a new rollout from step 1. Applications no step selects form an implicit last step.

Everything here is pure (data in, data out): where the state is kept and what the
status of each Application is, is the caller's (:mod:`gitops.appsets.controller`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gitops.apps.spec import Application
from gitops.appsets.spec import RollingSyncStep
from gitops.errors import InputError
from gitops.operator.status import AppStatus, now, short_revision

__all__ = [
    "Halt",
    "RolloutEvent",
    "RolloutPhase",
    "RolloutState",
    "advance",
    "commit_of",
    "pin_source",
    "pinned",
    "same_revision",
    "step_members",
]

RolloutPhase = Literal["Pending", "Progressing", "Halted", "Complete"]

#: Notification reasons of a rollout.
ROLLOUT_STARTED = "RolloutStarted"
ROLLOUT_HALTED = "RolloutHalted"
ROLLOUT_RESUMED = "RolloutResumed"
ROLLOUT_COMPLETED = "RolloutCompleted"

_COMMIT = re.compile(r"(?:^|[@:])([0-9a-f]{40})$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Halt(_Model):
    """Why a rollout stopped: the Application, at which revision, in which step."""

    application: str
    revision: str
    step: int
    message: str


class RolloutState(_Model):
    """A set's rollout, as kept between evaluations (and shown by ``gitops rollout status``)."""

    revision: str = Field(default="", description="the revision being rolled out")
    phase: RolloutPhase = "Pending"
    #: the step (1-based) in progress or halted; 0 when complete
    step: int = 0
    steps: int = 0
    #: the Application the rollout waits for (in progress) or that stopped it (halted)
    holding: str = ""
    message: str = ""
    halted: Halt | None = None
    #: application key -> the revision its source is pinned to
    pins: dict[str, str] = Field(default_factory=dict)
    #: applications accepted at a revision by ``gitops rollout resume`` despite their state
    waived: dict[str, str] = Field(default_factory=dict)
    #: set by ``gitops rollout resume`` (maybe from another process), taken by the next evaluation
    resume_requested: bool = Field(default=False, alias="resumeRequested")
    updated: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.phase == "Complete"

    def to_dict(self) -> dict[str, object]:
        """camelCase JSON data."""
        data: dict[str, object] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """Something to notify: ``reason`` (``RolloutHalted``…), the Application concerned or ""."""

    reason: str
    application: str
    message: str


def commit_of(revision: str) -> str | None:
    """The 40-hex commit a revision names (``main@sha1:<hex>``, ``sha1:<hex>``), or None."""
    found = _COMMIT.search(revision.lower())
    return found.group(1) if found else None


def same_revision(a: str, b: str) -> bool:
    """Whether two revisions name the same content (``main@sha1:X`` and ``sha1:X`` do)."""
    if not a or not b:
        return False
    if a == b:
        return True
    commit = commit_of(a)
    return commit is not None and commit == commit_of(b)


def pin_source(app: Application, revision: str, *, where: str) -> Application:
    """``app`` with its git source pinned to the commit of ``revision`` (``URL@<40 hex>``).

    InputError naming ``where`` (the set) for a source that is not git or a revision
    that names no commit: a rollout gates on an immutable revision.
    """
    url = app.spec.source.url
    commit = commit_of(revision)
    if not url.startswith(("git+", "git://")) or commit is None:
        raise InputError(f"{where}: rollingSync pins each generated Application's source to a "
                         f"commit; {app.key}'s source is not a git repository")
    from gitops.sources.git.url import parse_git_url

    base, hash_, fragment = url.partition("#")
    parsed = parse_git_url(url)
    if parsed.semver is not None:
        raise InputError(f"{where}: {app.key}: a source that follows a semver range cannot be "
                         "pinned by rollingSync")
    if parsed.ref is not None:
        base = base[:base.rindex("@")]
    pinned = f"{base}@{commit}{hash_}{fragment}"
    source = app.spec.source.model_copy(update={"url": pinned})
    return app.model_copy(update={"spec": app.spec.model_copy(update={"source": source})})


def pinned(where: str, apps: Iterable[Application],
           state: RolloutState) -> dict[str, Application]:
    """The applications of set ``where`` as the rollout lets them run: each pinned to its
    revision, those whose step has not come yet left out. What ``gitops run`` gives the
    scheduler (and what a one-shot run of the set should apply)."""
    return {app.key: pin_source(app, state.pins[app.key], where=f"ApplicationSet {where}")
            for app in apps if app.key in state.pins}


def step_members(steps: Sequence[RollingSyncStep],
                 labels: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """The application keys of each step, in key order: an application belongs to the first
    step that selects it; those no step selects form one more, last, step (when any)."""
    groups: list[list[str]] = [[] for _ in steps]
    rest: list[str] = []
    for key in sorted(labels):
        index = next((i for i, step in enumerate(steps) if step.selects(labels[key])), None)
        (rest if index is None else groups[index]).append(key)
    return [*groups, rest] if rest else groups


def _verdict(status: AppStatus | None, revision: str) -> Literal["done", "failed", "pending"]:
    """Whether an application pinned at ``revision`` is there (Synced and Healthy), failed
    there (a failed sync, or Degraded), or not yet."""
    if status is None:
        return "pending"
    applied = same_revision(status.last_applied_revision, revision)
    attempted = same_revision(status.last_attempted_revision, revision)
    if applied and status.sync == "Synced" and status.health == "Healthy":
        return "done"
    if status.health == "Degraded" and (applied or attempted):
        return "failed"
    ready = status.condition("Ready")
    if attempted and not applied and ready is not None and ready.status == "False" and \
            ready.reason in ("ReconciliationFailed", "Stalled"):
        return "failed"
    return "pending"


def advance(
    where: str,
    steps: Sequence[RollingSyncStep],
    labels: Mapping[str, Mapping[str, str]],
    revision: str,
    state: RolloutState,
    statuses: Mapping[str, AppStatus | None],
) -> tuple[RolloutState, list[RolloutEvent]]:
    """One evaluation of the rollout of set ``where``: the new state and what to notify.

    ``labels``: the generated applications (key -> labels); ``revision``: the revision
    the set resolved now; ``statuses``: each application's last status. Pure.
    """
    events: list[RolloutEvent] = []
    pins = {key: pin for key, pin in state.pins.items() if key in labels}
    waived = dict(state.waived)
    halted = state.halted
    previous_phase = state.phase
    if revision and not same_revision(revision, state.revision):
        if state.revision:
            events.append(RolloutEvent(ROLLOUT_STARTED, "", f"rolling out "
                                       f"{short_revision(revision)} from step 1"))
        halted, waived = None, {}
        previous_phase = "Pending"
    current = revision or state.revision
    if state.resume_requested:
        if halted is not None:
            waived[halted.application] = halted.revision
            events.append(RolloutEvent(ROLLOUT_RESUMED, halted.application,
                                       f"resumed: {halted.application} accepted at "
                                       f"{short_revision(halted.revision)}"))
        halted = None
    groups = step_members(steps, labels)
    base = state.model_copy(update={
        "revision": current, "pins": pins, "waived": waived, "resume_requested": False,
        "steps": len(groups), "updated": now(),
    })
    if halted is not None:
        return base.model_copy(update={
            "phase": "Halted", "halted": halted, "step": halted.step,
            "holding": halted.application, "message": halted.message}), events
    limits = [step.limit for step in steps]
    for index, members in enumerate(groups):
        waiting: list[str] = []
        pending: list[str] = []
        for key in members:
            pin = pins.get(key)
            if pin is None or not same_revision(pin, current):
                waiting.append(key)
                continue
            verdict = "done" if same_revision(waived.get(key, ""), current) else \
                _verdict(statuses.get(key), current)
            if verdict == "failed":
                status = statuses.get(key)
                why = status.message if status is not None and status.message else "failed"
                # Degraded, or a failed sync (whose health is still the last revision's)
                what = "is Degraded" if status is not None and status.health == "Degraded" \
                    else "failed"
                message = (f"halted at step {index + 1}: {key} {what} at "
                           f"{short_revision(current)}: {why}")
                halt = Halt(application=key, revision=current, step=index + 1, message=message)
                events.append(RolloutEvent(ROLLOUT_HALTED, key, message))
                return base.model_copy(update={
                    "phase": "Halted", "halted": halt, "step": index + 1, "holding": key,
                    "message": message}), events
            if verdict == "pending":
                pending.append(key)
        if not waiting and not pending:
            continue
        limit = limits[index](len(members)) if index < len(limits) else len(members)
        for key in waiting[:max(0, limit - len(pending))]:
            pins[key] = current
            pending.append(key)
        holding = pending[0] if pending else waiting[0]
        message = (f"step {index + 1} of {len(groups)}: waiting for {holding} to be Synced "
                   f"and Healthy at {short_revision(current)}")
        if not pending:
            message = (f"step {index + 1} of {len(groups)}: maxUpdate lets no Application "
                       f"of this step move; {holding} waits at its revision")
        return base.model_copy(update={
            "phase": "Progressing", "halted": None, "step": index + 1, "holding": holding,
            "message": message, "pins": pins}), events
    if previous_phase != "Complete" and current:
        events.append(RolloutEvent(ROLLOUT_COMPLETED, "",
                                   f"{short_revision(current)} reached every step"))
    return base.model_copy(update={
        "phase": "Complete", "halted": None, "step": 0, "holding": "",
        "message": f"{short_revision(current)} reached every step" if current else "",
        "pins": pins}), events
