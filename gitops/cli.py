"""The ``gitops`` command: a thin layer over the public API.

``gitops diff SOURCE TARGET`` exits 0 in sync, 1 with differences, 2 on error;
``gitops sync SOURCE TARGET`` exits 0 on success, 2 on error; ``gitops plugins``
lists what is installed. Errors are one line on stderr naming the input at fault,
with a traceback only under ``-v``. This module parses arguments and formats
output; it never decides what to change.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

from gitops import __version__
from gitops.engine import Reconciler
from gitops.errors import GitopsError
from gitops.model import Action, Change, Outcome, Plan, SyncResult
from gitops.plugins import list_plugins

__all__ = ["main"]

EXIT_OK, EXIT_DIFF, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops",
        description="Reconcile declarative configuration from a source into a target.",
    )
    parser.add_argument("--version", action="version", version=f"gitops {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress and show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("source", metavar="SOURCE",
                       help="PATH, dir:PATH, git+https://..., oci://... (see docs/cli.md)")
        p.add_argument("target", metavar="TARGET", help="dir:PATH, mock:, k8s:, k8s://CONTEXT")
        p.add_argument("--name", default="default",
                       help="inventory name: reconcilers with different names never prune "
                            "each other's objects (default: %(default)s)")
        p.add_argument("--prune", action="store_true",
                       help="delete objects this inventory owns that left the source")
        p.add_argument("--allow-empty", action="store_true",
                       help="allow an empty source to prune everything")
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)

    diff = sub.add_parser("diff", help="show what sync would change (exit 1 if anything)")
    common(diff)
    diff.add_argument("--no-diff", action="store_true", help="list changes without diffs")
    sync = sub.add_parser("sync", help="make the target match the source")
    common(sync)
    sync.add_argument("--dry-run", action="store_true",
                      help="validate and report, write nothing")
    sync.add_argument("--no-diff", action="store_true", help="list changes without diffs")
    push = sub.add_parser("push", help="publish a directory as a Flux-compatible OCI artifact")
    push.add_argument("directory", metavar="DIR", help="the directory to publish")
    push.add_argument("url", metavar="OCI_URL", help="oci://HOST[:PORT]/REPO:TAG (see docs/oci.md)")
    push.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE",
                      help="add a manifest annotation (repeatable)")
    push.add_argument("--revision", help="origin revision, e.g. main@sha1:<hex> "
                                         "(org.opencontainers.image.revision)")
    push.add_argument("--source", help="origin URL (org.opencontainers.image.source)")
    push.add_argument("-o", "--output", choices=("text", "json"), default="text")
    push.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                      help=argparse.SUPPRESS)
    plugins = sub.add_parser("plugins", help="list installed sources, targets, differs, renderers")
    plugins.add_argument("-o", "--output", choices=("text", "json"), default="text")
    plugins.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
    return parser


# -- text output -------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _change_row(change: Change, *extra: str) -> list[str]:
    key = change.key
    return [change.action.value, key.group_kind, key.namespace or "-", key.name, *extra]


def _change_text(reconciler: Reconciler, change: Change) -> str:
    if change.diff is not None:
        return change.diff.text
    if change.desired is not None:
        return reconciler.differ.diff(change.desired, None).text
    return f"--- live/{change.key}\n+++ /dev/null\n(deleted)\n"


def _print_plan_header(plan: Plan, out: TextIO) -> None:
    out.write(f"Source:   {plan.source}\nRevision: {plan.revision}\nTarget:   {plan.target}\n")


def _print_plan(reconciler: Reconciler, plan: Plan, show_diff: bool, out: TextIO) -> None:
    _print_plan_header(plan, out)
    if plan.changes:
        out.write("\n")
        _table([["ACTION", "KIND", "NAMESPACE", "NAME"],
                *(_change_row(c) for c in plan.changes)], out)
        if show_diff:
            for change in plan.changes:
                text = _change_text(reconciler, change)
                out.write("\n" + text + ("" if text.endswith("\n") else "\n"))
    out.write("\n" + _summary(plan) + "\n")
    for key in plan.extraneous:
        out.write(f"not in source, kept (use --prune to delete): {key}\n")
    for key in plan.orphaned:
        out.write(f"not in source, kept and disowned (gitops.dev/prune: disabled): {key}\n")


def _summary(plan: Plan) -> str:
    if plan.in_sync:
        return f"In sync: {plan.unchanged} resources unchanged."
    return (
        f"Plan: {plan.count(Action.CREATE)} to create, {plan.count(Action.UPDATE)} to update, "
        f"{plan.count(Action.DELETE)} to delete, {plan.unchanged} unchanged."
    )


def _print_result(result: SyncResult, out: TextIO) -> None:
    if result.results:
        out.write("\n")
        rows = [["ACTION", "KIND", "NAMESPACE", "NAME", "RESULT"]]
        for r in result.results:
            note = r.outcome.value if not r.message else f"{r.outcome.value}: {r.message}"
            rows.append(_change_row(r.change, note))
        _table(rows, out)
    done = sum(1 for r in result.results if r.outcome is Outcome.SUCCEEDED)
    if result.dry_run:
        verdict = "Dry run: nothing written"
    elif result.succeeded:
        verdict = "Sync succeeded"
    else:
        verdict = "Sync failed"
    out.write(
        f"\n{verdict}: revision {result.revision}, {done} of {len(result.results)} changes "
        f"{'validated' if result.dry_run else 'applied'}, {result.plan.unchanged} unchanged "
        f"({result.duration:.3f}s).\n"
    )


# -- commands ------------------------------------------------------------------------


def _reconciler(args: argparse.Namespace, *, dry_run: bool = False) -> Reconciler:
    return Reconciler(args.source, args.target, name=args.name, prune=args.prune,
                      allow_empty=args.allow_empty, dry_run=dry_run)


def _cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    with _reconciler(args) as reconciler:
        plan = reconciler.plan()
        if args.output == "json":
            data = plan.to_dict()
            if not args.no_diff:
                for item, change in zip(data["changes"], plan.changes, strict=True):
                    item["diff"] = _change_text(reconciler, change)
            _json(data, out)
        else:
            _print_plan(reconciler, plan, not args.no_diff, out)
    return EXIT_OK if plan.in_sync else EXIT_DIFF


def _cmd_sync(args: argparse.Namespace, out: TextIO) -> int:
    with _reconciler(args, dry_run=args.dry_run) as reconciler:
        plan = reconciler.plan()
        if args.output == "text":
            _print_plan(reconciler, plan, not args.no_diff, out)
            out.flush()
        result = reconciler.sync(plan)
    if args.output == "json":
        _json(result.to_dict(), out)
    else:
        _print_result(result, out)
    if not result.succeeded:
        failed = result.failed[0] if result.failed else None
        reason = failed.message if failed else "changes were skipped"
        raise GitopsError(f"sync of {plan.target} failed: {reason}")
    return EXIT_OK


def _cmd_plugins(args: argparse.Namespace, out: TextIO) -> int:
    rows: list[dict[str, Any]] = []
    for info in list_plugins():
        ok, why = info.status()
        rows.append({"kind": info.kind, "name": info.name, "object": info.value,
                     "from": info.distribution, "status": "ok" if ok else "unavailable",
                     "reason": why})
    if args.output == "json":
        _json(rows, out)
        return EXIT_OK
    table = [["KIND", "NAME", "OBJECT", "FROM", "STATUS"]]
    for row in rows:
        status = row["status"] if not row["reason"] else f"{row['status']}: {row['reason']}"
        table.append([row["kind"], row["name"], row["object"], row["from"], status])
    _table(table, out)
    return EXIT_OK


def _cmd_push(args: argparse.Namespace, out: TextIO) -> int:
    from gitops.errors import InputError
    from gitops.sources.oci import push  # imported on use: other commands do not pay for it

    annotations: dict[str, str] = {}
    for item in args.annotation:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    result = push(args.directory, args.url, annotations=annotations, revision=args.revision,
                  source=args.source)
    if args.output == "json":
        _json(result.to_dict(), out)
    else:
        out.write(f"Pushed:   {result.url}\nRevision: {result.revision}\n"
                  f"Layer:    {result.layer_digest} ({result.size} bytes)\n")
    return EXIT_OK


def _json(data: Any, out: TextIO) -> None:
    json.dump(data, out, indent=2, sort_keys=False)
    out.write("\n")


_COMMANDS = {"diff": _cmd_diff, "sync": _cmd_sync, "plugins": _cmd_plugins, "push": _cmd_push}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gitops`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return _COMMANDS[args.command](args, sys.stdout)
    except GitopsError as exc:
        if verbose:
            traceback.print_exc()
        print(f"gitops: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gitops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless -v
        if verbose:
            traceback.print_exc()
        print(f"gitops: internal error: {type(exc).__name__}: {exc} (run with -v for details)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
