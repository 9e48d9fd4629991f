"""``gitops rollout status SET -f FILE`` and ``gitops rollout resume SET -f FILE``
(or ``--kubeconfig PATH`` for an ApplicationSet object: its ``status.rollout``).

Both read the set's rollout state where ``gitops run -f FILE`` keeps it (a file beside
the declarations, :func:`gitops.appsets.controller.state_dir`), so they work from
another process while ``gitops run`` runs. ``status`` exits 0 when the rollout is
complete and 1 while it is halted or in progress (or not started), naming the
Application that holds it; ``resume`` asks the running process to clear a halt (it
accepts the halting Application at that revision and goes on with the next ones).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Protocol

from gitops.errors import InputError

if TYPE_CHECKING:  # the commands import what they use when run: `gitops --help` stays quick
    from gitops.appsets.controller import RolloutStore
    from gitops.appsets.rollout import RolloutState
    from gitops.appsets.spec import ApplicationSet

__all__ = ["COMMANDS", "add_commands"]

EXIT_OK, EXIT_NOT_DONE = 0, 1


class Out(Protocol):
    def write(self, text: str) -> None: ...


def add_commands(sub: Any) -> None:
    """Add ``gitops rollout status|resume`` to the ``gitops`` parser."""
    rollout = sub.add_parser("rollout", help="progressive rollout of an ApplicationSet "
                                             "(strategy.rollingSync)")
    verbs = rollout.add_subparsers(dest="rollout_command", metavar="COMMAND", required=True)
    for name, text in (
        ("status", "where the rollout is (exit 0 when complete, 1 while halted or in progress)"),
        ("resume", "clear a halt: accept the Application that stopped it and go on"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("appset", metavar="SET", help="NAME or NAMESPACE/NAME")
        verb.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                          help="YAML file declaring the ApplicationSet (repeatable; the one "
                               "given to gitops run)")
        verb.add_argument("--kubeconfig", metavar="PATH", default=None,
                          help="the ApplicationSet object in this cluster instead of files")
        verb.add_argument("--context", default=None, help="kubeconfig context (with --kubeconfig)")
        verb.add_argument("-o", "--output", choices=("text", "json"), default="text")
        verb.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help=argparse.SUPPRESS)


def find_appset(files: list[str], name: str) -> ApplicationSet:
    """The rolling ApplicationSet ``NAME`` or ``NAMESPACE/NAME`` declared in ``files``."""
    from gitops.apps.load import load_declarations

    sets: tuple[ApplicationSet, ...] = load_declarations(*files).of("ApplicationSet")
    found = [s for s in sets if name in (s.key, s.name)]
    if not found:
        raise InputError(f"no ApplicationSet {name!r} in {', '.join(files)}")
    if len(found) > 1:
        raise InputError(f"ApplicationSet {name!r} is ambiguous: "
                         f"{', '.join(s.key for s in found)}; give NAMESPACE/NAME")
    return _rolling(found[0])


def _rolling(appset: ApplicationSet) -> ApplicationSet:
    if appset.spec.strategy is None or not appset.spec.strategy.rolling:
        raise InputError(f"ApplicationSet {appset.key} has no strategy.rollingSync: it "
                         "updates all its Applications at once")
    return appset


def state_document(appset: ApplicationSet, state: RolloutState | None,
                   evaluator: str = "gitops run") -> dict[str, Any]:
    """What ``-o json`` prints; ``evaluator`` is what keeps the state (``gitops run`` for
    files, ``gitops controller`` in a cluster)."""
    if state is None:
        return {"applicationSet": appset.key, "phase": "Pending", "complete": False,
                "message": f"no rollout recorded yet: {evaluator} has not evaluated this set"}
    return {"applicationSet": appset.key, "complete": state.complete, **state.to_dict()}


def cmd_rollout(args: argparse.Namespace, out: Out) -> int:
    """``gitops rollout status|resume SET -f FILE``."""
    from gitops.appsets.controller import RolloutFiles, state_dir

    if bool(args.file) == bool(args.kubeconfig):
        raise InputError("give -f FILE (the files gitops run reads) or --kubeconfig PATH")
    store: RolloutStore
    if args.kubeconfig:
        from gitops.appsets.cluster import ClusterRollouts, get_appset
        from gitops.operator.kubeapi import OperatorAPI

        api = OperatorAPI.from_kubeconfig(args.kubeconfig, args.context)
        try:
            appset = _rolling(get_appset(api, args.appset))
            store = ClusterRollouts(api)
            return _command(appset, store, args, out, "gitops controller")
        finally:
            api.close()
    appset = find_appset(args.file, args.appset)
    return _command(appset, RolloutFiles(state_dir(args.file)), args, out, "gitops run")


def _command(appset: ApplicationSet, store: RolloutStore, args: argparse.Namespace,
             out: Out, evaluator: str) -> int:
    from gitops.operator.status import short_revision

    if args.rollout_command == "resume":
        return _resume(appset, store, args, out, evaluator)
    state = store.read(appset)
    if args.output == "json":
        out.write(json.dumps(state_document(appset, state, evaluator), indent=2) + "\n")
    elif state is None:
        out.write(f"{appset.key}: no rollout recorded yet ({evaluator} has not evaluated "
                  "this set)\n")
    else:
        where = f" (step {state.step} of {state.steps})" if state.step else ""
        out.write(f"{appset.key}: {state.phase} at {short_revision(state.revision)}{where}\n")
        if state.holding:
            verb = "stopped by" if state.phase == "Halted" else "waiting for"
            out.write(f"  {verb}: {state.holding}\n")
        if state.message:
            out.write(f"  {state.message}\n")
    return EXIT_OK if state is not None and state.complete else EXIT_NOT_DONE


def _resume(appset: ApplicationSet, store: RolloutStore, args: argparse.Namespace,
            out: Out, evaluator: str) -> int:
    from gitops.appsets.rollout import RolloutState
    from gitops.operator.status import short_revision

    outcome: dict[str, Any] = {"resumed": False, "phase": "Pending"}
    if store.read(appset) is None:
        out.write(json.dumps({"applicationSet": appset.key, **outcome}, indent=2) + "\n"
                  if args.output == "json" else
                  f"{appset.key}: no rollout recorded yet: nothing to resume\n")
        return EXIT_OK

    def change(before: RolloutState | None) -> RolloutState:
        if before is None or before.phase != "Halted":
            outcome["resumed"] = False
            outcome["phase"] = before.phase if before is not None else "Pending"
            return before or RolloutState()
        outcome["resumed"], outcome["phase"] = True, "Halted"
        outcome["application"] = before.holding
        return before.model_copy(update={"resume_requested": True})

    state = store.update(appset, change)
    if args.output == "json":
        out.write(json.dumps({"applicationSet": appset.key, **outcome,
                              "revision": state.revision}, indent=2) + "\n")
    elif outcome["resumed"]:
        out.write(f"{appset.key}: resume requested: {outcome['application']} is accepted at "
                  f"{short_revision(state.revision)}; {evaluator} goes on with the next "
                  "Applications\n")
    else:
        out.write(f"{appset.key}: not halted ({outcome['phase']}): nothing to resume\n")
    return EXIT_OK


COMMANDS = {"rollout": cmd_rollout}
