"""The reference site builds with warnings as errors, and its generators say what the code has.

``mkdocs build --strict`` fails on a broken link, a missing anchor, a page left out of the
navigation or an unresolvable cross-reference; these tests run it as ``make docs`` does.
Without MkDocs installed they skip, except under CI (``CI=true``), where they fail: CI
installs the ``docs`` extra, so its absence there is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "mkdocs.yml"


def _require_mkdocs() -> None:
    missing = [name for name in ("mkdocs", "material", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed: pip install -e '.[docs]'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _generator(name: str) -> ModuleType:
    """A module of docs/ (they import each other by bare name, as the mkdocs hook does)."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "docs"))


def _gen_cli() -> ModuleType:
    return _generator("gen_cli")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` (never ``-q``: below WARNING nothing is counted, nothing fails)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    env.pop("GITOPS_DOCS_REPO_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
         "-d", str(site)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_mkdocs()
    out = tmp_path_factory.mktemp("site")
    result = _build(CONFIG, out)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    return out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def test_site_builds_with_no_warning(site: Path) -> None:
    for page in ("index.html", "concepts.html", "urls.html", "comparison.html",
                 "cli-reference.html", "api/index.html", "api/plugins.html",
                 "api/operator.html", "api/modules.html", "plugins.html"):
        assert (site / page).is_file(), page
    assert not list((site).glob("gen_*.py")), "the generators are not part of the site"
    # A link to a repository file outside docs/ is the file's path, not a dead link.
    plugins = (site / "plugins.html").read_text(encoding="utf-8")
    assert "examples/plugins/gitops-plugin-example" in plugins
    assert 'href="../examples' not in plugins


def test_cli_reference_lists_every_command_and_flag(site: Path) -> None:
    from gitops.cli import _parser

    page = _text(site / "cli-reference.html")
    gen_cli = _gen_cli()
    names = [name for name, _, _ in gen_cli._commands(_parser(), "")]
    assert {"gitops diff", "gitops sync", "gitops run", "gitops controller"} <= set(names)
    for name in names:
        assert name in page, name
    for flag in ("--prune", "--dry-run", "--leader-elect", "--reload-interval", "--workers"):
        assert flag in page, flag


def test_api_reference_documents_the_public_api(site: Path) -> None:
    import gitops

    page = _text(site / "api" / "index.html")
    for name in gitops.__all__:
        if not name.startswith("_"):
            assert f"gitops.{name}" in page or name in page, name
    plugins = _text(site / "api" / "plugins.html")
    for contract in ("gitops.sources.base.Source", "gitops.targets.base.Target",
                     "gitops.differs.base.Differ", "gitops.renderers.base.Renderer"):
        assert contract in plugins, contract
    # Sphinx roles in docstrings became references or code, never raw markup.
    assert ":class:" not in page and ":meth:" not in plugins


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The site's own configuration and hooks, on two small pages with every kind of fault."""
    _require_mkdocs()
    copy = tmp_path / "repo"
    copy.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("docs", "mkdocs.yml", "site", ".git"):
            (copy / entry.name).symlink_to(entry)
    config = CONFIG.read_text(encoding="utf-8")
    pages = ("index.md", "other.md", "cli.md", "api/index.md", "cli-reference.md",
             "api/modules.md")  # the last two are generated; they link to the two before
    nav = "\nnav:\n" + "".join(f"  - {page}\n" for page in pages)
    (copy / "mkdocs.yml").write_text(config[:config.index("\nnav:\n")] + nav, encoding="utf-8")
    docs = copy / "docs"
    docs.mkdir()
    for generator in (ROOT / "docs").glob("gen_*.py"):
        (docs / generator.name).symlink_to(generator)
    (docs / "api").mkdir()
    for page in ("cli.md", "api/index.md"):
        (docs / page).write_text("# Stub\n", encoding="utf-8")
    (docs / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    (docs / "index.md").write_text(
        "# Home\n\n[fine](other.md#a-section) [repo file](../pyproject.toml)\n\n"
        "[gone](no-such-page.md) [anchor](other.md#no-such-anchor) "
        "[api][gitops.NoSuchThing] [file](../no/such/file.py)\n", encoding="utf-8")
    result = _build(copy / "mkdocs.yml", tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    for culprit in ("no-such-page.md", "no-such-anchor", "gitops.NoSuchThing",
                    "../no/such/file.py"):
        assert any(culprit in line for line in warnings), (culprit, output)
    assert not any("a-section" in line or "pyproject.toml" in line for line in warnings), output


def _toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool", description="A toy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    image = sub.add_parser("image", help="images")
    nested = image.add_subparsers(dest="verb", metavar="VERB")
    update = nested.add_parser("update", help="update the *tags* | now", aliases=["up"])
    update.add_argument("policy", metavar="POLICY", help="a policy file")
    update.add_argument("--interval", type=float, default=2.5,
                        help="seconds between checks (default %(default)s)")
    update.add_argument("--mode", choices=("a|b", "c"), default="c")
    update.add_argument("--tag", action="append", default=[], help="a tag")
    update.add_argument("--secret", help=argparse.SUPPRESS)
    return parser


def test_generator_walks_nested_commands_with_defaults_and_help() -> None:
    markdown = _gen_cli().cli_reference(_toy_parser())
    assert "## `tool image update`" in markdown
    assert markdown.count("## `tool image update`") == 1, "an alias is not a second command"
    assert "[`tool image update`](#tool-image-update)" in markdown
    assert "| `--interval INTERVAL` | `2.5` | seconds between checks (default 2.5) |" in markdown
    assert "| `--tag TAG` |  | a tag (repeatable) |" in markdown
    assert "| `POLICY` |  | a policy file |" in markdown
    assert "update the \\*tags\\* \\| now" in markdown  # literal text, one table cell
    assert "--secret" not in markdown
    assert "usage: tool image update [-h]" in markdown


def test_module_index_lists_every_public_module_from_the_files(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package.\n\nMore."""\n', encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "new.py").write_text(
        '"""Added later: see :class:`~pkg.sub.new.Thing` | piped."""\nimport not_installed\n',
        encoding="utf-8")
    (package / "_private.py").write_text('"""Hidden."""\n', encoding="utf-8")
    markdown = _generator("gen_modules").module_index(package)
    rows = [line for line in markdown.splitlines() if line.startswith("| <autoref")]
    assert [row.split('"')[1] for row in rows] == ["pkg", "pkg.sub", "pkg.sub.new"]
    assert rows[0].endswith("| The package. |")
    assert rows[1].endswith("| — |")
    assert '<autoref identifier="pkg.sub.new.Thing" optional><code>Thing</code></autoref>' in rows[2]
    assert "&#124; piped" in rows[2]
    assert "Hidden" not in markdown


def test_module_index_page_lists_the_package(site: Path) -> None:
    page = _text(site / "api" / "modules.html")
    for module in ("gitops.engine", "gitops.operator.scheduler", "gitops.sources.git"):
        assert module in page, module


def test_comparison_table_links_the_features_gitops_has() -> None:
    """A feature gitops has is never "no" in its column: it says what and links its page."""
    rows = {cells[0].strip(): cells[1].strip()
            for line in (ROOT / "docs" / "comparison.md").read_text().splitlines()
            if line.startswith("| ") and len(cells := line[2:].split(" | ")) >= 4}
    for feature, page in (("Templated fleets of applications", "(fleets.md)"),
                          ("Image update automation", "(images.md)")):
        gitops = rows[feature]
        assert not gitops.startswith("no"), (feature, gitops)
        assert page in gitops, (feature, gitops)
