"""Hostile manifests: parse errors never quote the input; nesting is capped at parse time.

A Secret value can end up anywhere a parser complains: a value that starts with ``!``
is read as a tag, an anchor name, a bad escape, a value its tag cannot read. Every
error names the file, the document, the line and column and the kind of problem, and
no text of the input, neither in its message nor in an exception it is chained to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.structural import StructuralDiffer
from gitops.errors import ManifestError
from gitops.manifests import DEFAULT_LIMITS, Limits, load_tree, parse_documents
from gitops.model import Resource

# Secret-looking tokens: upper case, digits and the punctuation that trips parsers. No
# lower case or spaces, so a message's own words ("line", "YAML") never look like one.
_TOKEN_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789!@#%&*:'\"\\{}[]<>,.|=+-_^~`$;?/"
TOKENS = st.text(alphabet=_TOKEN_CHARS, min_size=6, max_size=24).map(lambda t: f"QX{t}")

SECRET_HEAD = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n"

# Malformed YAML documents, each with the token where a Secret value would be.
YAML_TEMPLATES = [
    SECRET_HEAD + "  password: !{t}\n",
    SECRET_HEAD + "  password: !<{t}> x\n",
    SECRET_HEAD + "  password: !!{t} x\n",
    SECRET_HEAD + "  password: !!python/object:{t} {{}}\n",
    SECRET_HEAD + "  password: *{t}\n",
    SECRET_HEAD + "  a: &{t} 1\n  b: &{t} 2\n",
    SECRET_HEAD + "  password: !!int {t}\n",
    SECRET_HEAD + "  password: !!float {t}\n",
    SECRET_HEAD + "  password: !!bool {t}\n",
    SECRET_HEAD + "  password: !!set {t}\n",
    SECRET_HEAD + "  password: !!map {t}\n",
    SECRET_HEAD + '  password: "\\{t}"\n',
    SECRET_HEAD + '  password: "{t}\n',
    SECRET_HEAD + "  password: '{t}\n",
    SECRET_HEAD + "  password: [{t}\n",
    SECRET_HEAD + "  password: {{{t}\n",
    SECRET_HEAD + "  password: {t}: {t}\n",
    SECRET_HEAD + "  password: |{t}\n    x\n",
    SECRET_HEAD + "  password:\n\t{t}\n",
    SECRET_HEAD + "  password: {t}\n - {t}\n",
    SECRET_HEAD + "  ? [{t}]\n  : 1\n",
    "%TAG !{t}! tag:example.com,2000:\n---\n" + SECRET_HEAD + "  password: !{t}!x y\n",
    "%YAML 9.{t}\n---\n" + SECRET_HEAD,
    "%{t} x\n---\n" + SECRET_HEAD,
    SECRET_HEAD + "  password: {t}\x01\n",
    "---\n" + SECRET_HEAD + "---\n" + SECRET_HEAD + "  password: !{t}\n",
]

JSON_TEMPLATES = [
    '{{"kind": "Secret", "stringData": {{"password": "\\{t}"}}}}',
    '{{"kind": "Secret", "stringData": {{"password": {t}}}}}',
    '{{"kind": "Secret", "stringData": {{"password": "{t}',
    '{{"kind": "Secret"}} {t}',
    '{{"kind": "Secret", "stringData": {{"password": "{t}\x01"}}}}',
    '{{"kind": "Secret", "stringData": {{{t}: 1}}}}',
    '{{"kind": "Secret", "stringData": {{"password": "\\u{t}"}}}}',
    '{{"kind": "Secret", "stringData": {{"password": "{t}", }}}}',
]


def shown(exc: BaseException) -> str:
    """Everything an error could show: its text and the whole chain a traceback prints."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def assert_not_quoted(token: str, text: str) -> None:
    assert token not in text
    # nor a piece of it: any 6 characters holding a letter (digits alone may be a line)
    for start in range(len(token) - 5):
        piece = token[start : start + 6]
        if any(c.isalpha() for c in piece):
            assert piece not in text, (piece, text)


def parse_error(data: bytes, path: str) -> ManifestError | None:
    try:
        parse_documents(data, path)
    except ManifestError as exc:
        return exc
    return None


@given(st.sampled_from(YAML_TEMPLATES), TOKENS)
def test_yaml_errors_never_quote_the_input(template: str, token: str) -> None:
    exc = parse_error(template.format(t=token).encode(), "apps/secret.yaml")
    if exc is None:  # some tokens make a template valid (a tag PyYAML knows, say)
        return
    text = shown(exc)
    assert_not_quoted(token, text)
    assert exc.path == "apps/secret.yaml" and exc.document is not None
    assert str(exc).startswith(f"apps/secret.yaml (document {exc.document}): ")


@given(st.sampled_from(JSON_TEMPLATES), TOKENS)
def test_json_errors_never_quote_the_input(template: str, token: str) -> None:
    exc = parse_error(template.format(t=token).encode(), "apps/secret.json")
    if exc is None:
        return
    assert_not_quoted(token, shown(exc))
    assert exc.path == "apps/secret.json"


def test_a_secret_that_looks_like_a_tag_names_where_and_what() -> None:
    data = (SECRET_HEAD + "  user: admin\n  password: !Hunter2-very-secret\n").encode()
    exc = parse_error(data, "secret.yaml")
    assert exc is not None
    assert str(exc) == (
        "secret.yaml (document 0): invalid YAML at line 7, column 13: unknown tag (only "
        "YAML's standard tags are read; quote a value that starts with '!')"
    )
    assert exc.__cause__ is None and exc.__context__ is None


@pytest.mark.parametrize("tag", ["int", "float", "bool"])
def test_a_value_its_tag_cannot_read_is_a_manifest_error(tag: str) -> None:
    exc = parse_error(f"a: 1\nb: !!{tag} Hunter2x\n".encode(), "v.yaml")
    assert exc is not None, "not an internal ValueError/KeyError"
    assert "line 2, column 4" in str(exc) and "does not match its type" in str(exc)
    assert "unter2" not in shown(exc).lower()


def test_an_integer_too_long_to_convert_is_a_manifest_error() -> None:
    digits = "7" * 5000
    for data, path in ((f"a: {digits}\n", "big.yaml"), (f'{{"a": {digits}}}', "big.json")):
        exc = parse_error(data.encode(), path)
        assert exc is not None and "777777" not in shown(exc)


def test_duplicate_anchor_names_both_lines() -> None:
    exc = parse_error(b"a: &Hunter2 1\nb: &Hunter2 2\n", "d.yaml")
    assert exc is not None
    assert str(exc) == (
        "d.yaml (document 0): invalid YAML at line 2, column 4: duplicate anchor "
        "(first defined at line 1)"
    )


_FALLBACK_SCRIPT = """
import json, sys, traceback, yaml
del yaml.CSafeLoader  # as if PyYAML were built without libyaml
from gitops import manifests
from gitops.errors import ManifestError
assert manifests._SafeLoader is yaml.SafeLoader
token = "QXHUNTER2SECRET"
leaks = []
for template in json.loads(sys.argv[1]):
    try:
        manifests.parse_documents(template.format(t=token).encode(), "f.yaml")
    except ManifestError as exc:
        text = "".join(traceback.format_exception(exc))
        if "HUNTER2" in text:
            leaks.append(text)
print(json.dumps(leaks))
"""


def test_the_pure_python_loader_never_quotes_the_input_either() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FALLBACK_SCRIPT, json.dumps(YAML_TEMPLATES)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# ---------------------------------------------------------------- nesting


def nested_yaml(depth: int, *, flow: bool) -> bytes:
    """A ConfigMap-like document whose deepest collection is at level ``depth``."""
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n"
    if flow:  # the root mapping is level 1, "data" level 2
        return (head + "data: " + "[" * (depth - 1) + "x" + "]" * (depth - 1) + "\n").encode()
    lines = [head + "data:"]
    lines += ["  " * level + f"k{level}:" for level in range(1, depth - 1)]
    lines.append("  " * (depth - 1) + "leaf: x")
    return ("\n".join(lines) + "\n").encode()


def nested_json(depth: int) -> bytes:
    inner: object = "x"
    for _ in range(depth - 1):
        inner = [inner]
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": inner}
    ).encode()


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda d: nested_yaml(d, flow=True), "deep.yaml"),
        (lambda d: nested_yaml(d, flow=False), "deep.yaml"),
        (nested_json, "deep.json"),
    ],
    ids=["yaml-flow", "yaml-block", "json"],
)
def test_nesting_is_capped_at_the_limit(make: object, path: str) -> None:
    assert callable(make)
    limit = DEFAULT_LIMITS.max_depth
    (doc,) = parse_documents(make(limit), path)
    assert depth_of(doc.manifest) == limit
    for depth in (limit + 1, 900):
        exc = parse_error(make(depth), path)
        assert exc is not None, depth
        assert exc.path == path and exc.document == 0
        assert f"nested more than {limit} levels deep" in str(exc)
    small = Limits(max_depth=5)
    (doc,) = parse_documents(make(5), path, limits=small)
    with pytest.raises(ManifestError, match="nested more than 5 levels deep"):
        parse_documents(make(6), path, limits=small)


def test_yaml_nesting_error_names_the_line() -> None:
    exc = parse_error(nested_yaml(200, flow=False), "deep.yaml")
    assert exc is not None
    assert str(exc) == "deep.yaml (document 0): YAML nested more than 100 levels deep " \
                       "at line 104 (limit)"


def test_aliases_cannot_nest_a_document_deeper_than_the_limit() -> None:
    # a 60-level anchor placed 41 levels down: 101 levels once expanded
    chain = "[" * 60 + "]" * 60
    data = f"a: &x {chain}\nb: {'[' * 40}*x{']' * 40}\n".encode()
    exc = parse_error(data, "alias.yaml")
    assert exc is not None and "nested more than 100 levels deep" in str(exc)
    shallow = f"a: &x {chain}\nb: {'[' * 39}*x{']' * 39}\n".encode()
    (doc,) = parse_documents(shallow, "alias.yaml")
    assert depth_of(doc.manifest) == 100


def test_the_differ_never_sees_input_it_cannot_walk(tmp_path: Path) -> None:
    """What parses at the limit diffs; 900 levels (once an internal RecursionError) is refused."""
    (tmp_path / "deep.yaml").write_bytes(nested_yaml(DEFAULT_LIMITS.max_depth, flow=False))
    (desired,) = load_tree(tmp_path)
    live = Resource(desired.key, desired.api_version, json.loads(json.dumps(desired.manifest)))
    assert not StructuralDiffer().diff(desired, live).changed
    (tmp_path / "deep.yaml").write_bytes(nested_yaml(900, flow=False))
    with pytest.raises(ManifestError, match=r"deep\.yaml .*nested more than 100 levels"):
        load_tree(tmp_path)
    (tmp_path / "deep.yaml").write_bytes(nested_yaml(900, flow=True))
    with pytest.raises(ManifestError, match=r"deep\.yaml .*nested more than 100 levels"):
        load_tree(tmp_path)
