"""The ``gitops`` command: a thin layer over the public API.

``gitops diff SOURCE TARGET`` exits 0 in sync, 1 with differences, 2 on error;
``gitops sync SOURCE TARGET`` exits 0 on success, 2 on error (a failed resource
included), 130 when interrupted; ``gitops plugins`` lists what is installed. An error
is one line on stderr naming the input at fault (a failed sync: one line per failed
resource and a closing line), with a traceback only under ``-v``; with ``-o json``
stdout always carries exactly one JSON object, errors included. This module parses
arguments and formats output; it never decides what to change.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import yaml

from gitops import __version__
from gitops.appsets.preview_cli import COMMANDS as APPSET_COMMANDS
from gitops.appsets.preview_cli import add_commands as add_appset_commands
from gitops.appsets.rollout_cli import COMMANDS as ROLLOUT_COMMANDS
from gitops.appsets.rollout_cli import add_commands as add_rollout_commands
from gitops.differs import (
    Explanation,
    explanations_json,
    load_ignore_differences,
    render_explanations,
)
from gitops.differs.base import DEFAULT_POLICY
from gitops.engine import Reconciler
from gitops.errors import GitopsError, InputError, InvalidURLError, PluginError, SyncInterrupted
from gitops.images.cli import COMMANDS as IMAGE_COMMANDS
from gitops.images.cli import add_commands as add_image_commands
from gitops.manifests import origin_where
from gitops.model import (
    Action,
    Change,
    Event,
    Outcome,
    Plan,
    Resource,
    ResourceResult,
    SyncResult,
)
from gitops.operator.cli import COMMANDS as OPERATOR_COMMANDS
from gitops.operator.cli import add_app_options, add_commands, cmd_app_sync
from gitops.plugins import list_plugins
from gitops.urls import scrub

__all__ = ["main"]

EXIT_OK, EXIT_DIFF, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A command line argparse refused (raised instead of exiting, so -o json can answer)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line (even one argparse refuses) asks for ``-o json``."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return any(a in ("-ojson", "--output=json") or (a in ("-o", "--output") and b == "json")
               for a, b in pairs)


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="gitops",
        description="Reconcile declarative configuration from a source into a target.",
    )
    parser.add_argument("--version", action="version", version=f"gitops {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress and show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, target_optional: bool = False) -> None:
        p.add_argument("source", metavar="SOURCE",
                       help="PATH, dir:PATH, git+https://..., oci://... (see docs/cli.md)")
        p.add_argument("target", metavar="TARGET", nargs="?" if target_optional else None,
                       help="dir:PATH, mock:, k8s:, k8s://CONTEXT")
        p.add_argument("--name", default=None,
                       help="inventory name: reconcilers with different names never prune "
                            "each other's objects (default: derived from SOURCE)")
        p.add_argument("--prune", action="store_true",
                       help="delete objects this inventory owns that left the source")
        p.add_argument("--allow-empty", action="store_true",
                       help="allow an empty source to prune everything")
        p.add_argument("--adopt", action="store_true",
                       help="take over objects another inventory on the target owns")
        p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="substitute ${NAME} in the rendered objects (repeatable; Flux's "
                            "postBuild.substitute)")
        p.add_argument("--ignore-differences", metavar="FILE",
                       help="Argo CD ignoreDifferences rules (a YAML list): fields that are "
                            "not drift and that a sync leaves as they are")
        p.add_argument("--vars-file", action="append", default=[], metavar="FILE",
                       help="variables for substitution from a YAML mapping or NAME=VALUE "
                            "lines (repeatable; --var wins)")
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)

    diff = sub.add_parser("diff", help="show what sync would change (exit 1 if anything)")
    common(diff)
    diff.add_argument("--no-diff", action="store_true", help="list changes without diffs")
    diff.add_argument("--explain", action="store_true",
                      help="say, for every field that differs but is not drift, why not")
    sync = sub.add_parser(
        "sync", help="make the target match the source (or: sync APP -f FILE, an application now)"
    )
    common(sync, target_optional=True)
    add_app_options(sync)
    sync.add_argument("--dry-run", action="store_true",
                      help="validate and report, write nothing (not even the target folder)")
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
    add_commands(sub)
    add_rollout_commands(sub)
    add_appset_commands(sub)
    add_image_commands(sub)
    plugins = sub.add_parser("plugins", help="list installed sources, targets, differs, renderers")
    plugins.add_argument("-o", "--output", choices=("text", "json"), default="text")
    plugins.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
    return parser


# -- a stdout that may go away -------------------------------------------------------


class _Output:
    """stdout that tolerates a reader going away (``gitops diff | head -1``).

    A broken pipe drops the rest of the output quietly instead of raising in the
    middle of a sync: the command finishes its work and exits with its own code.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self._stream.write(text)
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            self.broken = True

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            self.broken = True

    def close_quietly(self) -> None:
        """Flush; after a broken pipe, point fd 1 at /dev/null so exit is quiet too."""
        self.flush()
        if self.broken:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


# -- text output -------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], out: _Output) -> None:
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


def _describe_target(reconciler: Reconciler) -> str:
    """The target URL, with what else the target says about itself (context, server)."""
    try:
        details = {k: v for k, v in reconciler.target.describe().items() if v}
    except Exception:  # a header detail is never worth failing the command
        details = {}
    if not details:
        return reconciler.target.url
    return f"{reconciler.target.url} ({', '.join(f'{k} {v}' for k, v in details.items())})"


def _print_plan_header(reconciler: Reconciler, plan: Plan, out: _Output) -> None:
    out.write(f"Source:    {plan.source}\nRevision:  {plan.revision}\n"
              f"Target:    {_describe_target(reconciler)}\nInventory: {plan.name}\n")


def _print_plan(reconciler: Reconciler, plan: Plan, show_diff: bool, out: _Output) -> None:
    _print_plan_header(reconciler, plan, out)
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
        out.write(f"not in source, kept and disowned: {key}\n")
    for hook in plan.hooks:
        name = f"{hook.generate_name}*" if hook.generate_name else hook.key.name
        phases = ",".join(p.value for p in hook.phases)
        out.write(f"hook {phases}: {hook.key.kind}/{hook.key.namespace or '-'}/{name} "
                  "(runs when the sync applies changes)\n")
    for key in plan.skipped:
        out.write(f"not applied (hook Skip): {key}\n")


def _summary(plan: Plan) -> str:
    if plan.in_sync:
        text = f"In sync: {plan.unchanged} resources unchanged."
        if plan.extraneous:
            text += (f" {len(plan.extraneous)} owned objects are no longer in the source "
                     "(use --prune to delete them).")
        return text
    return (
        f"Plan: {plan.count(Action.CREATE)} to create, {plan.count(Action.UPDATE)} to update, "
        f"{plan.count(Action.DELETE)} to delete, {plan.unchanged} unchanged."
    )


def _origin(result: ResourceResult) -> str:
    """Where the object of a result came from: ``apps/web.yaml (document 2)``."""
    desired = result.change.desired
    if desired is not None and desired.origin:
        return f" (from {origin_where(desired.origin)})"
    return ""


def _print_result(result: SyncResult, out: _Output, *, interrupted: bool = False) -> None:
    if result.results:
        out.write("\n")
        rows = [["ACTION", "KIND", "NAMESPACE", "NAME", "RESULT"]]
        for r in result.results:
            row = _change_row(r.change, r.outcome.value)
            if r.hook is not None:
                row[0] = f"hook {r.hook.value}"
            rows.append(row)
        _table(rows, out)
    changes = [r for r in result.results if r.hook is None]
    done = sum(1 for r in changes if r.outcome is Outcome.SUCCEEDED)
    if result.failed or interrupted:
        out.write("\n")
    for r in result.failed:
        what = f"{r.hook.value} hook {r.change.key}" if r.hook is not None else str(r.change.key)
        out.write(f"failed: {what}{_origin(r)}: {r.shown_message}\n")
    if interrupted:
        not_done = [r for r in result.results if r.outcome is Outcome.SKIPPED]
        out.write(f"not applied ({len(not_done)}): "
                  f"{', '.join(str(r.change.key) for r in not_done[:10])}"
                  f"{' ...' if len(not_done) > 10 else ''}\n")
    if interrupted:
        verdict = "Sync interrupted"
    elif result.dry_run:
        verdict = "Dry run: nothing written"
    elif result.succeeded:
        verdict = "Sync succeeded"
    else:
        verdict = "Sync failed"
    out.write(
        f"\n{verdict}: revision {result.revision}, {done} of {len(changes)} changes "
        f"{'validated' if result.dry_run else 'applied'}"
        f"{f', {len(result.hooks)} hooks run' if result.hooks else ''}, "
        f"{result.plan.unchanged} unchanged ({result.duration:.3f}s).\n"
    )


# -- hints for the inputs a newcomer gets wrong -------------------------------------------

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")


def _source_hint(source: str) -> str:
    """A suggestion for a SOURCE that names a Git repository the way git does."""
    if re.match(r"^(https?|ssh|git)://", source) and (
        source.rstrip("/").endswith(".git") or "@" in source.split("://", 1)[1].split("/", 1)[0]
        or source.startswith(("ssh://", "git://"))
    ):
        scheme = source.split("://", 1)[0]
        return scrub(f"; for a Git repository write git+{scheme}://{source.split('://', 1)[1]}")
    if _SCP_LIKE.match(source):
        user_host, _, path = source.partition(":")
        return f"; for a Git repository over SSH write git+ssh://{user_host}/{path}"
    return ""


def _check_target(target: str) -> None:
    """A bare TARGET (no scheme) must name an existing folder: never a new one by typo."""
    if re.match(r"^[A-Za-z][A-Za-z0-9.+-]*:", target):
        return
    if not Path(target).is_dir():
        raise InputError(f"TARGET {target!r} is not an existing folder; write dir:{target} to "
                         "create a file-tree target there, or k8s: for the current cluster")


def _hinted(args: argparse.Namespace, exc: GitopsError) -> str:
    text = str(exc)
    if isinstance(exc, PluginError | InvalidURLError) and hasattr(args, "source"):
        text += _source_hint(args.source)
    return text


# -- commands ------------------------------------------------------------------------


def _reconciler(args: argparse.Namespace, *, dry_run: bool = False) -> Reconciler:
    _check_target(args.target)
    hint = _source_hint(args.source)
    if hint and not Path(args.source).exists():
        raise InputError(f"SOURCE {scrub(args.source)!r} is not a gitops source URL{hint}")
    rules = load_ignore_differences(args.ignore_differences) if args.ignore_differences else ()
    return Reconciler(args.source, args.target, name=args.name, prune=args.prune,
                      allow_empty=args.allow_empty, adopt=args.adopt, dry_run=dry_run,
                      substitute=_variables(args.vars_file, args.var),
                      ignore_differences=rules, on_event=_warn_user)


#: Events a user must see even without -v: they change what the next sync may do.
_USER_WARNINGS = frozenset({"InventoryTakenOver", "InventoryWriteFailed"})


def _warn_user(event: Event) -> None:
    if event.reason in _USER_WARNINGS:
        print(f"gitops: warning: {event.message}", file=sys.stderr)


def _variables(files: Sequence[str], pairs: Sequence[str]) -> dict[str, str]:
    """``--vars-file`` then ``--var`` values; errors name the file or flag, never a value."""
    variables: dict[str, str] = {}
    for name in files:
        variables.update(_vars_file(Path(name)))
    for item in pairs:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise InputError("--var: expected NAME=VALUE")
        variables[key] = item[len(key) + 1:]
    return variables


_DOTENV_LINE = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")


def _vars_file(path: Path) -> dict[str, str]:
    """A YAML/JSON mapping of names to scalars, or ``NAME=VALUE`` lines (a .env file)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"--vars-file {path}: cannot read: {reason}") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all(_DOTENV_LINE.match(ln) for ln in lines):
        pairs = (re.sub(r"^\s*(export\s+)?", "", ln).partition("=") for ln in lines)
        return {k: v.strip().strip("'\"") for k, _, v in pairs}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(
            f"--vars-file {path}: not a YAML mapping or NAME=VALUE lines{where}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(v, str | int | float | bool) for v in data.values()
    ):
        raise InputError(f"--vars-file {path}: expected a mapping of names to scalar values")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in data.items()}


def _cmd_diff(args: argparse.Namespace, out: _Output) -> int:
    with _reconciler(args) as reconciler:
        plan = reconciler.plan()
        explained = _explanations(reconciler, plan) if args.explain else []
        if args.output == "json":
            data = plan.to_dict()
            if not args.no_diff:
                for item, change in zip(data["changes"], plan.changes, strict=True):
                    item["diff"] = _change_text(reconciler, change)
            if args.explain:
                data["explain"] = [
                    {"apiVersion": res.api_version, "kind": res.key.kind,
                     "namespace": res.key.namespace, "name": res.key.name,
                     "fields": explanations_json(items)}
                    for res, items in explained
                ]
            _json(data, out)
        else:
            _print_plan(reconciler, plan, not args.no_diff, out)
            if args.explain:
                _print_explanations(explained, out)
    return EXIT_OK if plan.in_sync else EXIT_DIFF


def _explanations(reconciler: Reconciler, plan: Plan) -> list[tuple[Resource, list[Explanation]]]:
    """Why each field that differs is not drift, per desired object (those with any)."""
    explain = getattr(reconciler.differ, "explain", None)
    if not callable(explain):
        raise InputError(f"--explain: the differ {reconciler.differ!r} cannot explain")
    found: list[tuple[Resource, list[Explanation]]] = []
    for res in plan.desired:
        items = explain(res, plan.live.get(res.key), plan.policy or DEFAULT_POLICY)
        if items:
            found.append((res, list(items)))
    return found


def _print_explanations(explained: list[tuple[Resource, list[Explanation]]], out: _Output) -> None:
    if not explained:
        out.write("\nNothing differs that is not reported: no explanation needed.\n")
        return
    out.write("\nWhy these differences are not drift:\n")
    for res, items in explained:
        out.write("\n" + render_explanations(items, str(res.key)))


def _cmd_sync(args: argparse.Namespace, out: _Output) -> int:
    if args.file or args.kubeconfig is not None or args.context is not None:
        if args.target is not None:
            raise InputError("sync takes SOURCE TARGET, or APP with -f FILE / --kubeconfig")
        given = [flag for flag, value in (
            ("--dry-run", args.dry_run), ("--prune", args.prune),
            ("--allow-empty", args.allow_empty), ("--adopt", args.adopt),
            ("--name", args.name is not None), ("--var", args.var),
            ("--vars-file", args.vars_file), ("--ignore-differences", args.ignore_differences),
        ) if value]
        if given:
            raise InputError(f"{', '.join(given)}: not for an application sync (its spec says "
                             "how it is synced; `gitops diff SOURCE TARGET` previews)")
        return cmd_app_sync(args, out)
    if args.target is None:
        raise InputError("sync needs SOURCE and TARGET (or APP -f FILE to sync an application)")
    with _reconciler(args, dry_run=args.dry_run) as reconciler:
        plan = reconciler.plan()
        if args.output == "text":
            _print_plan(reconciler, plan, not args.no_diff, out)
            out.flush()
        try:
            result = reconciler.sync(plan)
        except SyncInterrupted as stop:
            _report(stop.result, args, out, interrupted=True)
            return EXIT_INTERRUPTED
    _report(result, args, out)
    return EXIT_OK if result.succeeded else EXIT_ERROR


def _report(result: SyncResult, args: argparse.Namespace, out: _Output, *,
            interrupted: bool = False) -> None:
    if args.output == "json":
        data = result.to_dict()
        if interrupted:
            data.update(error="sync interrupted", exit=EXIT_INTERRUPTED)
        elif not result.succeeded:
            data.update(error=f"sync of {result.plan.target} failed: {len(result.failed)} of "
                        f"{len(result.results)} changes failed", exit=EXIT_ERROR)
        _json(data, out)
    else:
        _print_result(result, out, interrupted=interrupted)


def _cmd_plugins(args: argparse.Namespace, out: _Output) -> int:
    rows: list[dict[str, Any]] = []
    for info in list_plugins():
        ok, why = info.status()
        rows.append({"kind": info.kind, "name": info.name, "object": info.value,
                     "from": info.distribution, "status": "ok" if ok else "unavailable",
                     "reason": why})
    if args.output == "json":
        _json({"plugins": rows}, out)  # one object, as every -o json output
        return EXIT_OK
    table = [["KIND", "NAME", "OBJECT", "FROM", "STATUS"]]
    for row in rows:
        status = row["status"] if not row["reason"] else f"{row['status']}: {row['reason']}"
        table.append([row["kind"], row["name"], row["object"], row["from"], status])
    _table(table, out)
    return EXIT_OK


def _cmd_push(args: argparse.Namespace, out: _Output) -> int:
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


def _json(data: Any, out: _Output) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


Command = Callable[[argparse.Namespace, _Output], int]
_COMMANDS: dict[str, Command] = {
    "diff": _cmd_diff, "sync": _cmd_sync, "plugins": _cmd_plugins, "push": _cmd_push,
    **OPERATOR_COMMANDS,  # they write to anything with .write()
    **ROLLOUT_COMMANDS,
    **APPSET_COMMANDS,
    **IMAGE_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gitops`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:  # argparse's usage line and exit code 2, plus -o json's object
        exc.parser.print_usage(sys.stderr)
        return _fail(_Output(sys.stdout), _wants_json(argv), False, str(exc), EXIT_ERROR)
    verbose = bool(getattr(args, "verbose", False))
    # Without -v the result says what failed; the engine's warnings would say it again.
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    out = _Output(sys.stdout)
    json_output = getattr(args, "output", "text") == "json"
    try:
        code = _COMMANDS[args.command](args, out)
    except GitopsError as exc:
        code = _fail(out, json_output, verbose, _hinted(args, exc), EXIT_ERROR)
    except KeyboardInterrupt:
        code = _fail(out, json_output, False, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: still one line unless -v
        code = _fail(out, json_output, verbose, f"internal error: {type(exc).__name__}: {exc} "
                     "(run with -v for details)", EXIT_ERROR)
    out.close_quietly()
    return code


def _fail(out: _Output, json_output: bool, verbose: bool, message: str, code: int) -> int:
    if verbose:
        traceback.print_exc()
    print(f"gitops: error: {message}", file=sys.stderr)
    if json_output:
        _json({"error": message, "exit": code}, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
