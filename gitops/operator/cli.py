"""The operator's commands: ``gitops run``, ``status``, ``history``, ``sync APP``,
``rollback``, ``suspend`` and ``resume`` (``gitops controller``, ``crds`` and ``install``
are in :mod:`gitops.operator.controller_cli`).

Handlers take the parsed arguments and a writable ``out``; they return the exit code
and raise :class:`~gitops.errors.GitopsError` for the CLI to report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from gitops.apps.spec import Application
from gitops.errors import GitopsError, InputError
from gitops.operator.commands import (
    Catalog,
    FileCatalog,
    find_application,
    held_back,
    rollback,
    run_once,
    set_suspended,
    sync_now,
)
from gitops.operator.reconcile import ReconcileOutcome
from gitops.operator.status import AppStatus, short_revision

if TYPE_CHECKING:
    from gitops.images.report import ImageReport

__all__ = ["COMMANDS", "add_app_options", "add_commands", "cmd_app_sync"]

log = logging.getLogger("gitops.operator")

EXIT_OK, EXIT_NOT_READY, EXIT_ERROR = 0, 1, 2


class Out(Protocol):
    def write(self, text: str) -> None: ...


def add_app_options(p: argparse.ArgumentParser) -> None:
    """``-f FILE`` (repeatable) or ``--kubeconfig`` [``--context``]: where applications are."""
    p.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                   help="YAML file declaring the applications, as given to gitops run "
                        "(repeatable)")
    p.add_argument("--kubeconfig", metavar="PATH", default=None,
                   help="read Application objects from this cluster instead of files")
    p.add_argument("--context", default=None, help="kubeconfig context (with --kubeconfig)")


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)


def add_commands(sub: Any) -> None:
    """Add the operator's sub-commands to the ``gitops`` parser."""
    run = sub.add_parser("run", help="keep the applications declared in files converged")
    run.add_argument("-f", "--file", action="append", required=True, metavar="FILE",
                     help="YAML file declaring Application, ApplicationSet, ImagePolicy and "
                          "ImageUpdateAutomation documents (repeatable)")
    run.add_argument("--once", action="store_true",
                     help="reconcile every application once, dependencies first, and exit "
                          "(0 when all are Ready)")
    run.add_argument("--workers", type=int, default=4,
                     help="applications reconciled at the same time (default 4)")
    run.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS",
                     help="how often the files are checked for changes (default 2)")
    add_runtime_options(run)
    _output(run)

    status = sub.add_parser("status", help="sync, health and revision of each application "
                                           "(exit 1 unless all are Synced and Healthy)")
    add_app_options(status)
    _output(status)
    history = sub.add_parser("history", help="the last 10 syncs of an application")
    history.add_argument("app", metavar="APP", help="NAME or NAMESPACE/NAME")
    add_app_options(history)
    _output(history)
    back = sub.add_parser("rollback", help="apply an earlier revision and suspend automation")
    back.add_argument("app", metavar="APP", help="NAME or NAMESPACE/NAME")
    back.add_argument("revision", metavar="REVISION",
                      help="a revision from `gitops history` (a unique prefix is enough)")
    back.add_argument("--force", action="store_true",
                      help="roll back even though selfHeal is on (automation is suspended)")
    add_app_options(back)
    _output(back)
    for name, text in (("suspend", "stop automated reconciles of an application"),
                       ("resume", "resume automated reconciles of an application")):
        p = sub.add_parser(name, help=text)
        p.add_argument("app", metavar="APP", help="NAME or NAMESPACE/NAME")
        add_app_options(p)
        _output(p)
    _add_cluster_commands(sub)


def _add_cluster_commands(sub: Any) -> None:
    """``controller``, ``crds`` and ``install`` (their handlers import the Kubernetes client)."""
    controller = sub.add_parser("controller", help="reconcile Application, ApplicationSet and image "
                                                      "automation objects in a cluster")
    controller.add_argument("--kubeconfig", metavar="PATH", default=None,
                            help="kubeconfig (default: in-cluster, else $KUBECONFIG)")
    controller.add_argument("--context", default=None, help="kubeconfig context")
    controller.add_argument("--namespace", default=None,
                            help="watch Applications in this namespace only (default: all)")
    controller.add_argument("--workers", type=int, default=4,
                            help="applications reconciled at the same time (default 4)")
    controller.add_argument("--leader-elect", action="store_true",
                            help="reconcile only while holding the Lease (for replicas)")
    controller.add_argument("--shards", type=int, default=0, metavar="N",
                            help="split applications into N shards, one Lease each")
    controller.add_argument("--lease-namespace",
                            default=os.environ.get("POD_NAMESPACE") or "gitops-system",
                            help="namespace of the Leases (default: $POD_NAMESPACE, else "
                                 "gitops-system)")
    controller.add_argument("--lease-duration", default="15s", metavar="DURATION",
                            help="how long a Lease holds without renewal (default 15s)")
    controller.add_argument("--identity", default=None,
                            help="this replica's name in the Leases (default: host name + pid)")
    add_runtime_options(controller)
    _output(controller)
    crds = sub.add_parser("crds", help="print the CustomResourceDefinitions (pipe to kubectl "
                                       "apply --server-side -f -)")
    _output(crds)
    install = sub.add_parser("install", help="print the manifests that run the controller in "
                                             "a cluster (CRD, RBAC, Deployment)")
    install.add_argument("--namespace", default="gitops-system")
    install.add_argument("--image", default=None, help="the controller's container image")
    install.add_argument("--webhook-secret", default=None, metavar="SECRET",
                         help="serve webhooks on :9090 with the key 'secret' of this Secret "
                              "(created by you in the namespace)")
    _output(install)


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``gitops run`` and ``gitops controller``."""
    p.add_argument("--metrics-addr", default="127.0.0.1:8080", metavar="ADDR",
                   help="serve /metrics, /healthz and /readyz on HOST:PORT (default "
                        "127.0.0.1:8080; 'off' disables)")
    p.add_argument("--webhook-addr", default=None, metavar="ADDR",
                   help="serve POST /hooks/git and /hooks/apps/NAMESPACE/NAME on HOST:PORT")
    p.add_argument("--webhook-secret-file", default=None, metavar="PATH",
                   help="the webhook secret (HMAC key, GitLab token, bearer token)")
    p.add_argument("--notify", action="append", default=[], metavar="URL",
                   help="POST a JSON notification on SyncSucceeded, SyncFailed, DriftDetected, "
                        "HealthDegraded, image updates and rollout steps (repeatable; "
                        "docs/notifications.md)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))


# -- catalogs ------------------------------------------------------------------------------


@contextmanager
def catalog_of(args: argparse.Namespace) -> Iterator[Catalog]:
    """The catalog the arguments name: files (``-f``) or a cluster (``--kubeconfig``)."""
    if args.file and args.kubeconfig:
        raise InputError("give -f FILE or --kubeconfig, not both")
    catalog: Catalog
    if args.file:
        catalog = FileCatalog(args.file)
    elif args.kubeconfig is not None or args.context is not None:
        from gitops.operator.cluster import ClusterCatalog

        catalog = ClusterCatalog.from_kubeconfig(args.kubeconfig, args.context)
    else:
        raise InputError("say where the applications are: -f apps.yaml or --kubeconfig PATH")
    try:
        yield catalog
    finally:
        catalog.close()


# -- status and history --------------------------------------------------------------------


def _age(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _status_row(app: Application, status: AppStatus | None) -> dict[str, Any]:
    status = status or AppStatus()
    when = status.last_sync_time
    return {
        "name": app.name, "namespace": app.namespace,
        "sync": status.sync, "health": status.health,
        "revision": status.last_applied_revision,
        "lastSyncTime": when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None,
        "suspended": app.spec.suspend or status.suspended, "message": status.message,
    }


def _print_applications(rows: list[dict[str, Any]], args: argparse.Namespace, out: Out, *,
                        last_sync: bool, images: ImageReport | None = None) -> bool:
    """Print the rows of ``status`` and ``run --once``; whether all are Synced and Healthy
    (and every image object, when the files declare some, Ready)."""
    if args.output == "json":
        out.write(json.dumps({"applications": rows, **(images.to_json() if images else {})},
                             indent=2) + "\n")
    else:
        table = [["NAME", "SYNC", "HEALTH", "REVISION", *(["LAST SYNC"] if last_sync else []),
                  "MESSAGE"]]
        for r in rows:
            when = r["lastSyncTime"]
            table.append([
                f"{r['namespace']}/{r['name']}",
                r["sync"] + (" (suspended)" if r["suspended"] and last_sync else ""),
                r["health"], short_revision(r["revision"]) or "-",
                *([_age(datetime.fromisoformat(when) if when else None)] if last_sync else []),
                _one_line(r["message"]),
            ])
        if rows or not images:
            _table(table, out)
        if images:
            images.print_tables(lambda rows: _table(rows, out))
    return all(r["sync"] == "Synced" and r["health"] == "Healthy" for r in rows) and (
        images is None or images.ready)


def _table(rows: Sequence[Sequence[str]], out: Out) -> None:
    from gitops.cli import _table as table  # one table printer for the whole CLI

    table(rows, out)  # type: ignore[arg-type]


def _read_status(catalog: Catalog, app: Application) -> AppStatus | None:
    """The stored status of ``app``; one that cannot be read is a row saying why."""
    try:
        return catalog.store.read(app)
    except GitopsError as exc:
        return AppStatus(message=f"cannot read its status: {exc}")


def _unreconciled_row(key: str, message: str) -> dict[str, Any]:
    namespace, _, name = key.partition("/")
    return {"name": name, "namespace": namespace, "sync": "Unknown", "health": "Unknown",
            "revision": "", "lastSyncTime": None, "suspended": False, "message": message}


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    with catalog_of(args) as catalog:
        apps = sorted(catalog.applications(), key=lambda a: a.key)
        rows = [(app, _read_status(catalog, app)) for app in apps]
        invalid = catalog.invalid()
        held = held_back(catalog)
        images = _image_report(catalog)
    data = [_status_row(app, status) for app, status in rows]
    for key, problem in invalid:  # listed, never Ready: the object is not a valid Application
        data.append(_unreconciled_row(key, f"invalid: {problem}"))
    for key, why in held:  # listed, not Ready: a rollout has not reached it
        data.append(_unreconciled_row(key, why))
    healthy = _print_applications(data, args, out, last_sync=True, images=images)
    return EXIT_OK if healthy and (data or images) else EXIT_NOT_READY


def _image_report(catalog: Catalog) -> ImageReport | None:
    """The image objects the files declare, with their status (None for a cluster, or
    files that declare none: ``kubectl get imagepolicies`` shows a cluster's)."""
    if not isinstance(catalog, FileCatalog):
        return None
    from gitops.images.report import image_report

    return image_report(catalog.files.load_declarations()) or None


def _one_line(text: str, width: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def cmd_history(args: argparse.Namespace, out: Out) -> int:
    with catalog_of(args) as catalog:
        app = find_application(catalog, args.app)
        status = catalog.store.read(app) or AppStatus()
    records = [r.model_dump(mode="json") for r in status.history]
    if args.output == "json":
        out.write(json.dumps({"application": app.key, "history": records}, indent=2) + "\n")
        return EXIT_OK
    table = [["ID", "TIME", "REVISION", "RESULT", "TRIGGER", "MESSAGE"]]
    for i, r in enumerate(status.history, 1):
        table.append([str(i), r.time.strftime("%Y-%m-%dT%H:%M:%SZ"), r.revision, r.result,
                      r.trigger, _one_line(r.message, 60)])
    if len(table) == 1:
        out.write(f"{app.key}: no sync recorded yet\n")
    else:
        _table(table, out)
    return EXIT_OK


# -- sync, rollback, suspend, resume -------------------------------------------------------


def _report(app: Application, outcome: ReconcileOutcome, args: argparse.Namespace,
            out: Out) -> int:
    status = outcome.status
    if args.output == "json":
        out.write(json.dumps({"application": app.key, "failed": outcome.failed,
                              "status": status.to_dict()}, indent=2) + "\n")
    else:
        out.write(f"{app.key}: {status.sync}, {status.health} at "
                  f"{status.last_attempted_revision or '-'}: {status.message}\n")
    return EXIT_NOT_READY if outcome.failed else EXIT_OK


def cmd_app_sync(args: argparse.Namespace, out: Out) -> int:
    """``gitops sync APP -f FILE``: reconcile one application now (manual trigger)."""
    with catalog_of(args) as catalog:
        app = find_application(catalog, args.source)
        return _report(app, sync_now(catalog, app), args, out)


def cmd_rollback(args: argparse.Namespace, out: Out) -> int:
    with catalog_of(args) as catalog:
        app = find_application(catalog, args.app)
        outcome = rollback(catalog, app, args.revision, force=args.force)
        code = _report(app, outcome, args, out)
        if not outcome.failed and args.output != "json":
            out.write(f"{app.key}: automation suspended; `gitops resume {app.key}` lets it "
                      "apply the source again\n")
        return code


def _cmd_suspension(suspended: bool) -> Callable[[argparse.Namespace, Out], int]:
    def command(args: argparse.Namespace, out: Out) -> int:
        with catalog_of(args) as catalog:
            app = find_application(catalog, args.app)
            set_suspended(catalog, app, suspended)
        word = "suspended" if suspended else "resumed"
        if args.output == "json":
            out.write(json.dumps({"application": app.key, "suspended": suspended}) + "\n")
        else:
            out.write(f"{app.key}: {word}\n")
        return EXIT_OK
    return command


# -- gitops run ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    from gitops.operator.runtime import Runtime, configure

    configure(args)
    if args.once:
        catalog = FileCatalog(args.file)
        try:
            results = run_once(catalog)
            held = held_back(catalog)
        finally:
            catalog.close()
        return _report_once(results, args, out, held)
    from gitops.operator.files import ApplicationFiles, TargetStatusStore

    files = ApplicationFiles(args.file)
    declared = files.load_declarations()
    store = TargetStatusStore()
    stop = threading.Event()
    with _signals(stop), Runtime(args, store) as runtime:
        runtime.apply(declared)
        runtime.start()
        log.info("keeping %d applications converged", len(declared.applications))
        while not stop.wait(args.reload_interval):
            if files.changed():
                try:
                    loaded = files.load_declarations()
                except InputError as exc:
                    files.seen()  # said once per change, not every interval
                    log.error("not reloaded: %s", exc, extra={"reason": "ReloadFailed"})
                    continue
                if declared and not loaded:  # a file truncated mid-write, most likely
                    files.seen()
                    log.error("not reloaded: the files declare nothing any more; keeping the "
                              "%d declarations running (stop gitops run to drop them all)",
                              len(declared), extra={"reason": "ReloadFailed"})
                    continue
                declared = loaded
                log.info("reloaded %d applications", len(declared.applications),
                         extra={"reason": "Reloaded"})
                runtime.apply(declared)
        log.info("stopping: letting the syncs in flight finish")
    store.close()
    return EXIT_OK


def _report_once(results: list[tuple[Application, ReconcileOutcome | None]],
                 args: argparse.Namespace, out: Out, held: list[tuple[str, str]]) -> int:
    rows = []
    for app, outcome in results:
        status = outcome.status if outcome is not None else None
        row = _status_row(app, status)
        if outcome is None:
            row["message"] = "not reconciled: suspended, or a dependency is not Ready"
        rows.append(row)
    rows.extend(_unreconciled_row(key, f"not reconciled: {why}") for key, why in held)
    return EXIT_OK if _print_applications(rows, args, out, last_sync=False) else EXIT_NOT_READY


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the sync in flight finishes) instead of killing us."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _cluster_command(name: str) -> Callable[[argparse.Namespace, Out], int]:
    def command(args: argparse.Namespace, out: Out) -> int:
        from gitops.operator.controller_cli import COMMANDS as CLUSTER

        return CLUSTER[name](args, out)
    return command


COMMANDS: dict[str, Callable[[argparse.Namespace, Out], int]] = {
    **{name: _cluster_command(name) for name in ("controller", "crds", "install")},
    "run": cmd_run,
    "status": cmd_status,
    "history": cmd_history,
    "rollback": cmd_rollback,
    "suspend": _cmd_suspension(True),
    "resume": _cmd_suspension(False),
}
