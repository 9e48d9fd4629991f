"""``gitops appset preview -f FILE [-o json]``: the Applications each ApplicationSet would generate.

Nothing is applied, and no generated Application's source or target is opened (a
``git`` generator does read its repository's folder list: that is the generator). Text:
a table SET, APPLICATION, SOURCE, TARGET (URLs without credentials); JSON: a list of
Application documents, as ``gitops run -f`` would read them, except that URLs are shown
without credentials and the values of secret-looking options (a name holding
``password``, ``token``, ``secret`` or ``key``) as ``***``.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, Protocol

from gitops.apps.load import load_declarations
from gitops.apps.spec import Application
from gitops.appsets.generate import generate
from gitops.appsets.generators.base import GeneratorContext
from gitops.errors import InputError
from gitops.urls import scrub

__all__ = ["COMMANDS", "add_commands", "cmd_appset", "shown_document"]


_SECRET_OPTION = re.compile(r"password|token|secret|key", re.IGNORECASE)


class Out(Protocol):
    def write(self, text: str) -> None: ...


def add_commands(sub: Any) -> None:
    """Add ``gitops appset`` (sub-command ``preview``) to the ``gitops`` parser."""
    appset = sub.add_parser("appset", help="ApplicationSets: preview what they generate")
    actions = appset.add_subparsers(dest="appset_command", metavar="COMMAND", required=True)
    preview = actions.add_parser("preview", help="print the Applications each ApplicationSet "
                                                 "in the files would generate (applies nothing)")
    preview.add_argument("-f", "--file", action="append", required=True, metavar="FILE",
                         help="YAML file declaring ApplicationSet documents (repeatable)")
    preview.add_argument("-o", "--output", choices=("text", "json"), default="text")
    preview.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)


def cmd_appset(args: argparse.Namespace, out: Out) -> int:
    """Run ``gitops appset SUBCOMMAND``; returns the exit code (0)."""
    if args.appset_command != "preview":  # argparse allows only the commands above
        raise InputError(f"unknown appset command {args.appset_command!r}")
    return _preview(args, out)


def _preview(args: argparse.Namespace, out: Out) -> int:
    declared = load_declarations(*args.file)
    sets = declared.of("ApplicationSet")
    if not sets:
        raise InputError(f"no ApplicationSet in {', '.join(args.file)}")
    context = GeneratorContext()
    rows = [["SET", "APPLICATION", "SOURCE", "TARGET"]]
    documents: list[dict[str, Any]] = []
    try:
        for appset in sets:
            for app in generate(appset, context=context).applications:
                documents.append(shown_document(app))
                rows.append([appset.key, app.key, scrub(app.spec.source.url), scrub(app.spec.target.url)])
    finally:
        context.cache.close()
    if args.output == "json":
        out.write(json.dumps(documents, indent=2) + "\n")
        return 0
    from gitops.operator.cli import _table  # the operator commands' table layout

    _table(rows, out)
    return 0


def shown_document(app: Application) -> dict[str, Any]:
    """``app`` as a document, URLs scrubbed and secret-looking option values masked."""
    document = app.to_dict()
    for part in ("source", "target"):
        ref = document["spec"][part]
        ref["url"] = scrub(ref["url"])
        ref["options"] = {k: "***" if _SECRET_OPTION.search(k) else v
                          for k, v in ref.get("options", {}).items()}
    return document


#: handlers by command name, for gitops/cli.py's dispatch table
COMMANDS = {"appset": cmd_appset}
