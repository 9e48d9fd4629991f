"""A kopf operator that reconciles each ``Environment`` (crd.yaml) with the gitops SDK.

Each Environment names a source (``spec.source``: a Git, OCI or folder URL); the operator
applies what it declares to the cluster it runs in (``k8s:``: the in-cluster service
account, or the current kubeconfig context) with :mod:`gitops.aio`, so the syncs of all
Environments share kopf's event loop without blocking it. It writes the conditions
``Ready`` and ``Reconciling``, the applied revision and each object's result into the
Environment's status, re-applies at once when the spec changes and every
``spec.interval`` seconds (healing drift), honours ``spec.suspend``, and prunes what it
applied when the Environment is deleted (a finalizer).

    kubectl apply --server-side -f examples/kopf-operator/crd.yaml
    kopf run examples/kopf-operator/operator.py --standalone
    kubectl apply -f examples/kopf-operator/environment.yaml
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import kopf

import gitops.aio
from gitops import ResourceKey, SyncResult
from gitops.engine import default_name

GROUP, VERSION, PLURAL = "example.gitops.dev", "v1alpha1", "environments"
#: Where the objects go: the cluster the operator runs in (set it to k8s://CONTEXT to aim
#: elsewhere).
TARGET = os.environ.get("GITOPS_TARGET", "k8s:")
#: How often the timer looks whether an Environment's ``spec.interval`` has passed.
TICK = float(os.environ.get("GITOPS_TICK", "1"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Bookkeeping in our own annotations and finalizer, so status holds only our fields."""
    settings.persistence.finalizer = f"{GROUP}/prune"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)


# -- the SDK side: one gitops.aio.Reconciler per Environment ----------------------------


def inventory_name(namespace: str, name: str) -> str:
    """The Environment's inventory on the cluster (a DNS label, stable for its name)."""
    return default_name(f"environments/{namespace}/{name}")


async def reconciler_for(memo: kopf.Memo, spec: kopf.Spec, namespace: str,
                         name: str) -> gitops.aio.Reconciler:
    """The Environment's reconciler, made again when its source or prune changed.

    Made with ``open()``, off the event loop: opening ``k8s:`` may run the kubeconfig's
    credential plugin.
    """
    wanted = (spec["source"], bool(spec.get("prune", True)))
    reconciler: gitops.aio.Reconciler | None = memo.get("reconciler")
    if reconciler is not None and memo.get("built_for") == wanted:
        return reconciler
    made = await gitops.aio.Reconciler.open(
        wanted[0], TARGET, name=inventory_name(namespace, name), prune=wanted[1])
    old: gitops.aio.Reconciler | None = memo.get("reconciler")
    if old is not None and old is not reconciler and memo.get("built_for") == wanted:
        await made.aclose()  # another handler made the same meanwhile: use that one
        return old
    memo.reconciler, memo.built_for = made, wanted
    if old is not None:
        await old.aclose()  # after the call it may be running
    return made


async def reconcile(memo: kopf.Memo, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                    patch: kopf.Patch, logger: kopf.Logger) -> None:
    """Sync the Environment now and write the outcome into ``patch.status``."""
    namespace, name = meta["namespace"], meta["name"]
    generation = meta.get("generation", 0)
    conditions = list(status.get("conditions", []))
    if spec.get("suspend"):
        set_condition(conditions, "Reconciling", "False", "Suspended",
                      "spec.suspend is true", generation)
        patch.status["conditions"] = conditions
        return
    memo.last_sync = time.monotonic()
    try:
        reconciler = await reconciler_for(memo, spec, namespace, name)
        result = await reconciler.sync()
    except gitops.GitopsError as exc:  # bad source, unreachable cluster: say so, retry later
        logger.error("reconcile failed: %s", exc)
        set_condition(conditions, "Ready", "False", "ReconcileFailed", str(exc), generation)
        set_condition(conditions, "Reconciling", "True", "RetryScheduled",
                      f"next attempt within {spec.get('interval', 300)}s", generation)
        patch.status["conditions"] = conditions
        patch.status["observedGeneration"] = generation
        return
    logger.info("synced %s: %d changes", result.revision, len(result.results))
    ready = "True" if result.succeeded else "False"
    why = "Succeeded" if result.succeeded else "SyncFailed"
    summary = f"applied {result.revision}" if result.succeeded else (
        result.message or f"{len(result.failed)} of {len(result.results)} changes failed")
    set_condition(conditions, "Ready", ready, why, summary, generation)
    set_condition(conditions, "Reconciling", "False", why, summary, generation)
    patch.status["conditions"] = conditions
    patch.status["observedGeneration"] = generation
    patch.status["lastSyncTime"] = now()
    patch.status["resources"] = resource_results(result)
    if result.succeeded:
        patch.status["revision"] = result.revision


def resource_results(result: SyncResult) -> list[dict[str, str]]:
    """Every object the source declares (``unchanged`` where in sync), then what was pruned."""
    done = {r.change.key: r for r in result.results if r.hook is None}
    rows = []
    for res in result.plan.desired:
        r = done.pop(res.key, None)
        if r is None:
            rows.append(row(res.api_version, res.key, "unchanged", "unchanged", ""))
        else:
            rows.append(row(res.api_version, res.key, r.change.action, r.outcome, r.message))
    rows.extend(row(r.change.api_version, key, r.change.action, r.outcome, r.message)
                for key, r in done.items())  # pruned
    return rows


def row(api_version: str, key: ResourceKey, action: str, outcome: str,
        message: str) -> dict[str, str]:
    entry = {"apiVersion": api_version, "kind": key.kind, "namespace": key.namespace,
             "name": key.name, "action": str(action), "outcome": str(outcome)}
    if message:
        entry["message"] = message
    return entry


def set_condition(conditions: list[dict[str, Any]], kind: str, value: str, reason: str,
                  message: str, generation: int) -> None:
    """Set one condition in place; its transition time moves only when its status does."""
    old = next((c for c in conditions if c.get("type") == kind), {})
    since = old.get("lastTransitionTime") if old.get("status") == value else None
    new = {"type": kind, "status": value, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": since or now()}
    conditions[:] = [c for c in conditions if c.get("type") != kind] + [new]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the kopf side: when to reconcile ------------------------------------------------------


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
def mark_reconciling(spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                     patch: kopf.Patch, **_: Any) -> None:
    """First: Reconciling=True (kopf writes it before the next handler starts)."""
    if spec.get("suspend"):
        return
    conditions = list(status.get("conditions", []))
    set_condition(conditions, "Reconciling", "True", "Progressing",
                  f"applying generation {meta.get('generation', 0)}", meta.get("generation", 0))
    patch.status["conditions"] = conditions


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def apply_now(memo: kopf.Memo, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                    patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """A new or changed Environment (or the operator restarting) is reconciled at once."""
    await reconcile(memo, spec, meta, status, patch, logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK)
async def resync(memo: kopf.Memo, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                 patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Every ``spec.interval`` seconds after the last sync: heal drift, pick up new revisions."""
    last = memo.get("last_sync")
    if last is None or time.monotonic() - last < spec.get("interval", 300):
        return  # not reconciled yet by apply_now, or not due
    await reconcile(memo, spec, meta, status, patch, logger)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def prune_everything(memo: kopf.Memo, spec: kopf.Spec, meta: kopf.Meta,
                           logger: kopf.Logger, **_: Any) -> None:
    """The finalizer: sync an empty source, which prunes all this Environment applied.

    As Flux does, ``prune: false`` or ``suspend: true`` leaves the objects in place.
    """
    old = memo.get("reconciler")
    if old is not None:
        await old.aclose()
    if spec.get("suspend") or not spec.get("prune", True):
        logger.info("deleted: objects left in place (prune is off or suspended)")
        return
    with tempfile.TemporaryDirectory() as nothing:
        async with await gitops.aio.Reconciler.open(
            f"dir:{nothing}", TARGET, name=inventory_name(meta["namespace"], meta["name"]),
            prune=True, allow_empty=True,
        ) as pruner:
            result = await pruner.sync()
    if not result.succeeded:  # kopf retries; the finalizer stays until all is pruned
        why = result.message or "; ".join(r.message for r in result.failed)
        raise kopf.TemporaryError(f"prune failed: {why}", delay=5)
    logger.info("deleted: pruned %d objects", len(result.results))

