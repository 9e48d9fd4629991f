"""What the README, docs/ and the examples' READMEs show is what the code has.

Users copy command lines and imports from the pages; a page that shows a flag, a command
or a name the code does not have is worse than no page. These tests read every page and
check, without running anything: each ``gitops`` command line in a code block is one the
real argument parser accepts (synopsis brackets, ``a|b`` alternatives and ``...`` read as
the first choice), each ``from gitops... import`` in a ``python`` block resolves, and each
dotted ``gitops.`` name written in backticks exists.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                *ROOT.glob("examples/**/README.md")])

# Code blocks whose lines are commands; others (text, json, yaml, python...) are not.
_COMMAND_LANGUAGES = ("", "sh", "console")
_COMMAND = re.compile(r"^\s*(?:\$ )?(?:[A-Z_]+=\S+ )*(gitops [a-z].*)$")
# Words of a synopsis that stand for several arguments: they are left out.
_META = {"...", "", "RENDER", "OPTIONS", "RUNTIME", "WHERE"}
# Placeholders of arguments the parser converts (an int, a number of seconds).
_NUMBERS = {"N": "2", "S": "2"}


def _blocks(page: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of each code block, fenced or indented."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            end = next(i for i in range(index + 1, len(lines))
                       if lines[i].lstrip().startswith("```"))
            yield index + 2, fence.group(1), lines[index + 1:end]
            index = end + 1
            continue
        if line.startswith("    ") and (index == 0 or not lines[index - 1].strip()):
            end = index
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            if page.parent == ROOT or "examples" in page.parts:  # docs/ indents list items
                yield index + 1, "", [text[4:] for text in lines[index:end]]
            index = end
            continue
        index += 1


def _command_lines() -> Iterator[tuple[str, str]]:
    """(``page:line``, command) of every ``gitops`` command shown in a command block."""
    for page in PAGES:
        for first, language, lines in _blocks(page):
            if language not in _COMMAND_LANGUAGES:
                continue
            joined: list[tuple[int, str]] = []
            for offset, line in enumerate(lines):
                if joined and joined[-1][1].endswith("\\"):
                    joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
                elif language != "console" or line.startswith("$ "):
                    joined.append((first + offset, line))
            for number, line in joined:
                match = _COMMAND.match(line)
                if match:
                    command = re.split(r"\s#\s|\s\|\s", " " + match.group(1))[0].strip()
                    yield f"{page.relative_to(ROOT)}:{number}", command


def _as_arguments(command: str) -> list[str]:
    """A command line, a synopsis read as its first choice of each alternative."""
    arguments = []
    for word in shlex.split(command)[1:]:
        word = word.strip("[]()").removesuffix("...")
        if word in _META:
            continue
        if "|" in word and not word.startswith(("semver:", "'")):
            word = word.split("|")[0]
        arguments.append(_NUMBERS.get(word, word))
    return arguments


COMMANDS = list(_command_lines())


def test_the_pages_show_commands() -> None:
    """The extraction finds the commands the pages are known to show (it is not vacuous)."""
    shown = {command.split(" -")[0] for _, command in COMMANDS}
    for expected in ("gitops image scan oci://HOST/REPO", "gitops appset preview",
                     "gitops rollout status fleet", "gitops run", "gitops sync examples/app k8s:"):
        assert any(command.startswith(expected) for command in shown), expected
    assert len(COMMANDS) > 50


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_command_line_shown_parses(where: str, command: str) -> None:
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(_as_arguments(command))
    except SystemExit as exc:  # --help, --version: not shown in the pages
        pytest.fail(f"{where}: {command}: exits {exc.code}")
    except Exception as exc:
        pytest.fail(f"{where}: {command}: {exc}")


def test_a_wrong_flag_would_be_caught() -> None:
    with pytest.raises(Exception, match="unrecognized arguments: --no-such-flag"):
        _parser().parse_args(_as_arguments("gitops image scan oci://h/r --policy semver:^1 "
                                           "[--no-such-flag]"))


def _python_imports() -> Iterator[tuple[str, str, str]]:
    for page in PAGES:
        for first, language, lines in _blocks(page):
            if language != "python":
                continue
            tree = ast.parse("\n".join(lines), filename=f"{page.name}:{first}")
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gitops"):
                    for alias in node.names:
                        yield f"{page.relative_to(ROOT)}:{first + node.lineno - 1}", \
                            node.module or "", alias.name


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


def test_every_import_in_a_python_block_resolves() -> None:
    imports = list(_python_imports())
    assert len(imports) > 20
    missing = [f"{where}: from {module} import {name}" for where, module, name in imports
               if not _resolves(f"{module}.{name}")]
    assert not missing, missing


# Names in backticks that look like modules but are not: entry-point groups.
_NOT_MODULES = {"gitops.generators"}


def test_every_dotted_gitops_name_in_backticks_exists() -> None:
    names: dict[str, str] = {}
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for code in re.findall(r"`([^`]+)`", line):
                for name in re.findall(r"(?<![\w/.-])gitops(?:\.[A-Za-z_]\w*)+", code):
                    if not name.startswith("gitops.dev") and name not in _NOT_MODULES:
                        names.setdefault(name, f"{page.relative_to(ROOT)}:{number}")
    assert len(names) > 30
    missing = [f"{where}: {name}" for name, where in names.items() if not _resolves(name)]
    assert not missing, missing


def _first_column_names(table: list[str]) -> set[str]:
    names: set[str] = set()
    for row in table:
        cell = re.match(r"^\|\s*((?:`[a-z_]+`(?:,\s*)?)+)\s*\|", row)
        if cell:
            names |= set(re.findall(r"`([a-z_]+)`", cell.group(1)))
    return names


def _tables(page: Path) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*page.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


# page, options model, one option its table lists, options written elsewhere (the URL)
_OPTION_TABLES = [
    ("kubernetes.md", "gitops.targets.kubernetes.options.KubernetesOptions", "field_manager",
     {"context"}),
    ("git.md", "gitops.sources.git.options.GitOptions", "ssh_key", set()),
    ("oci.md", "gitops.sources.oci.options.OCISourceOptions", "max_files", set()),
    ("targets.md", "gitops.targets.filetree.options.FileTreeOptions", "fsync", set()),
    ("targets.md", "gitops.targets.memory.MemoryOptions", "failure_rate", set()),
]


@pytest.mark.parametrize(("page", "model", "anchor", "elsewhere"), _OPTION_TABLES,
                         ids=[model.rpartition(".")[2] for _, model, _, _ in _OPTION_TABLES])
def test_option_tables_list_exactly_the_options_the_plugin_takes(
        page: str, model: str, anchor: str, elsewhere: set[str]) -> None:
    module, _, name = model.rpartition(".")
    fields = set(getattr(importlib.import_module(module), name).model_fields)
    tables = [names for table in _tables(ROOT / "docs" / page)
              if anchor in (names := _first_column_names(table))]
    assert len(tables) == 1, f"docs/{page}: one table lists `{anchor}`"
    assert tables[0] - fields == set(), f"docs/{page} lists options {name} does not take"
    assert fields - elsewhere - tables[0] == set(), f"docs/{page} leaves options of {name} out"


def test_sync_json_has_the_keys_of_diff_json_as_cli_md_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/cli.md: ``sync`` prints the plan's keys (without ``diff``), plus its own."""
    import json

    from gitops.cli import main

    source, target = str(ROOT / "examples" / "app"), f"dir:{tmp_path / 'out'}"
    assert main(["diff", source, target, "-o", "json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    assert main(["sync", source, target, "-o", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(plan) - {"hooks"} <= set(result), set(plan) - set(result)
    assert {"dry_run", "succeeded", "started_at", "duration_seconds"} <= set(result)
    assert "diff" in plan["changes"][0] and "diff" not in result["changes"][0]
    assert result["orphaned"] == result["skipped"] == []


def _command_parser(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The sub-command parser ``words`` name (``image scan`` ...) and the words after it."""
    parser: argparse.ArgumentParser = _parser()
    while words:
        choices = next((a.choices for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or words[0] not in choices:
            break
        parser, words = choices[words[0]], words[1:]
    return parser, words


def test_every_inline_gitops_command_names_real_commands_and_flags() -> None:
    """Prose mentions (`gitops rollout resume SET -f FILE`, `gitops run --once`) are
    partial command lines: their sub-commands and flags must exist."""
    wrong = []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for code in re.findall(r"`(gitops [a-z][^`]*)`", line):
                words = code.split("|")[0].split()[1:] if " | " in code else code.split()[1:]
                words = [w.split("|")[0] for w in words]  # `gitops image scan|update`
                parser, rest = _command_parser(words)
                if parser.prog == "gitops" and words:
                    wrong.append(f"{page.relative_to(ROOT)}:{number}: `{code}`: no command "
                                 f"{words[0]!r}")
                options = {o for a in parser._actions for o in a.option_strings}
                wrong += [f"{page.relative_to(ROOT)}:{number}: `{code}`: {parser.prog} has no "
                          f"{flag}" for flag in (w.split("=")[0] for w in rest)
                          if flag.startswith("-") and flag not in options]
    assert not wrong, wrong


def test_every_declared_document_the_pages_show_loads(tmp_path: Path) -> None:
    """The `Application`, `ApplicationSet`, `ImagePolicy` and `ImageUpdateAutomation`
    examples are what a user copies into the files `gitops run -f` reads."""
    from gitops.apps.load import load_declarations

    kinds: set[str] = set()
    for page in PAGES:
        for first, language, lines in _blocks(page):
            if language == "yaml" and "gitops.dev/v1alpha1" in "\n".join(lines):
                path = tmp_path / f"{page.stem}-{first}.yaml"
                path.write_text("\n".join(lines), encoding="utf-8")
                declared = load_declarations(path)  # raises naming the page and line
                kinds |= set(declared.others) | ({"Application"} if declared.applications
                                                 else set())
    assert kinds == {"Application", "ApplicationSet", "ImagePolicy", "ImageUpdateAutomation"}


def test_the_generator_and_strategy_snippets_of_fleets_md_validate() -> None:
    import yaml

    from gitops.appsets.generators.base import ConfigModel
    from gitops.appsets.generators.clusters import ClustersConfig
    from gitops.appsets.generators.git import GitConfig
    from gitops.appsets.generators.listgen import ListConfig
    from gitops.appsets.generators.matrix import MatrixConfig
    from gitops.appsets.generators.merge import MergeConfig
    from gitops.appsets.spec import StrategySpec

    models: dict[str, type[ConfigModel]] = {
        "list": ListConfig, "git": GitConfig, "clusters": ClustersConfig,
        "matrix": MatrixConfig, "merge": MergeConfig}
    seen = set()
    for _, language, lines in _blocks(ROOT / "docs" / "fleets.md"):
        data = yaml.safe_load("\n".join(lines)) if language == "yaml" else None
        if isinstance(data, list):  # a generator entry: {NAME: CONFIG}
            for entry in data:
                ((name, config),) = entry.items()
                models[name].model_validate(config)
                seen.add(name)
        elif isinstance(data, dict) and "strategy" in data.get("spec", {}):
            StrategySpec.model_validate(data["spec"]["strategy"])
            seen.add("strategy")
    assert seen == {*models, "strategy"}
