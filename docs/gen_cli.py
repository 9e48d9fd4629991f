"""The CLI reference page, generated from the ``gitops`` argument parser.

Walks every sub-command (nested ones too: ``gitops image update`` as much as ``gitops
diff``) and writes Markdown with each command's usage, arguments, flags, defaults and
help. Nothing here names a command: a command added to the parser appears on the next
build. Run by the site's mkdocs hook (``docs/gen_site.py``); also on its own::

    PYTHONPATH=. python docs/gen_cli.py > cli-reference.md
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

_WIDTH = 100  # usage lines wrap here whatever the terminal is: the page is reproducible
_MARKDOWN_SPECIAL = re.compile(r"([\\*_<>|\[\]#])")


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """Markdown for ``parser`` and every sub-command under it, in parser order."""
    lines = [
        "# CLI reference",
        "",
        "Generated from the argument parser at build time: every command, argument and flag "
        f"that `{parser.prog} --help` knows, with its default. How the commands behave (exit "
        "codes, output formats, URLs) is in [The gitops command](cli.md). Every command "
        "also takes `-h`/`--help`.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    commands = list(_commands(parser, ""))
    for name, _sub, summary in commands[1:]:
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {_cell(summary)} |")
    lines.append("")
    for name, sub, summary in commands:
        lines.extend(_command(name, sub, summary))
    return "\n".join(lines) + "\n"


def _commands(parser: argparse.ArgumentParser, summary: str
              ) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(full name, parser, one-line help) for ``parser`` and its sub-commands, depth first."""
    yield parser.prog, parser, summary
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias of a command already listed
                continue
            seen.add(id(sub))
            yield from _commands(sub, helps.get(name, ""))


def _command(name: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    formatter = argparse.HelpFormatter(parser.prog, width=_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    usage = formatter.format_help().strip()
    lines = [f"## `{name}`", ""]
    text = parser.description or summary
    if text:
        lines += [_text(text), ""]
    lines += ["```text", usage, "```", ""]
    rows = [_row(parser, action) for action in parser._actions if _documented(action)]
    if rows:
        lines += ["| argument | default | description |", "| --- | --- | --- |", *rows, ""]
    subcommands = [sub for sub in parser._actions if isinstance(sub, argparse._SubParsersAction)]
    for sub in subcommands:
        lines.append("Sub-commands: " + ", ".join(
            f"[`{parser.prog} {choice}`](#{_anchor(f'{parser.prog} {choice}')})"
            for choice in dict.fromkeys(sub.choices)) + ".")
        lines.append("")
    if parser.epilog:
        lines += [_text(parser.epilog), ""]
    return lines


def _documented(action: argparse.Action) -> bool:
    """Whether ``--help`` lists the argument (``-h`` itself is said once, in the intro)."""
    return action.help is not argparse.SUPPRESS and not isinstance(
        action, argparse._SubParsersAction | argparse._HelpAction)


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if action.option_strings:
        takes_value = action.nargs != 0
        metavar = f" {_metavar(action)}" if takes_value else ""
        name = ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)
    else:
        name = f"`{_metavar(action)}`"
    notes = []
    if action.choices is not None and action.metavar is not None:
        notes.append("one of " + ", ".join(f"`{choice}`" for choice in action.choices))
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    if action.nargs == "?" and not action.option_strings:
        notes.append("optional")
    description = _text(_expand_help(parser, action))
    if notes:
        description = f"{description} ({'; '.join(notes)})" if description else "; ".join(notes)
    return f"| {name} | {_default(action)} | {_cell_md(description)} |"


def _metavar(action: argparse.Action) -> str:
    if action.metavar is None and action.choices is not None:
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    if isinstance(action.metavar, str):
        return action.metavar
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    return action.dest.upper() if action.option_strings else action.dest


def _default(action: argparse.Action) -> str:
    default = action.default
    if (action.nargs == 0 or default is None or default == [] or action.required
            or default is argparse.SUPPRESS):
        return ""
    return f"`{default}`"


def _expand_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as ``--help`` prints it (``%(default)s`` and friends filled in)."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {**vars(action), "prog": parser.prog}
    params = {key: getattr(value, "__name__", value) for key, value in params.items()
              if value is not argparse.SUPPRESS}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(choice) for choice in params["choices"])
    return text % params


def _text(text: str) -> str:
    """Plain help text as Markdown: code spans kept, everything else literal."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: nothing is code
        return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return "`".join(part if index % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", part)
                    for index, part in enumerate(parts))


def _cell(text: str) -> str:
    return _cell_md(_text(text))


def _cell_md(markdown: str) -> str:
    """Markdown in a table cell: one line, and a ``|`` inside a code span cannot end it."""
    return " ".join(markdown.split()).replace("`|", "`\\|")


def _anchor(name: str) -> str:
    """The id of the heading ``## `name` `` (GitHub's slugs, as ``mkdocs.yml`` sets them)."""
    return re.sub(r"[^\w\- ]", "", name.strip().lower()).replace(" ", "-")


def main() -> None:
    """Print the reference for the ``gitops`` command."""
    from gitops.cli import _parser

    print(cli_reference(_parser()), end="")


if __name__ == "__main__":
    main()
