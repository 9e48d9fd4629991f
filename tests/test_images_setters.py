"""The setter rewrite: only marked values change, everything else stays byte for byte."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import InputError, ManifestError
from gitops.images.setters import SetterChange, UnknownMarker, rewrite, update_tree

DIGEST = "sha256:" + "ab" * 32


@dataclass(frozen=True)
class Choice:
    image: str
    tag: str
    digest: str | None = None


WEB = Choice("ghcr.io/acme/web", "1.4.0", DIGEST)
CHOICES = {"apps:web": WEB, "apps:db": Choice("registry.local:5000/db", "15.2")}


def marker(ref: str) -> str:
    return json.dumps({"$imagepolicy": ref})


DEPLOYMENT = f"""\
# the web tier  {marker("apps:web")} in a comment line marks nothing
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}   # flow style, untouched
spec:
  template:
    spec:
      containers:
        - name: web
          image: "ghcr.io/acme/web:1.0.0"   # {marker("apps:web")}
          args: ['--x # {marker("apps:web")}']
        - name: db
          image: 'registry.local:5000/db:14'\t# {marker("apps:db")}  \n\
---
values:
  tag: 1.0.0 # {marker("apps:web:tag")}
  repository: old/name # {marker("apps:web:name")}
  images:
  - ghcr.io/acme/web:0.9 # {marker("apps:web")}
  - other:1 # {marker("apps:missing")}
"""


def test_markers_on_values_and_items_are_rewritten_and_nothing_else() -> None:
    result = rewrite(DEPLOYMENT, CHOICES)
    expected = (DEPLOYMENT
                .replace('"ghcr.io/acme/web:1.0.0"', '"ghcr.io/acme/web:1.4.0"')
                .replace("'registry.local:5000/db:14'", "'registry.local:5000/db:15.2'")
                .replace("tag: 1.0.0", "tag: 1.4.0")
                .replace("repository: old/name", "repository: ghcr.io/acme/web")
                .replace("- ghcr.io/acme/web:0.9", "- ghcr.io/acme/web:1.4.0"))
    assert result.text == expected
    assert result.changes == (
        SetterChange(10, "apps:web", "ghcr.io/acme/web:1.0.0", "ghcr.io/acme/web:1.4.0"),
        SetterChange(13, "apps:db", "registry.local:5000/db:14", "registry.local:5000/db:15.2"),
        SetterChange(16, "apps:web", "1.0.0", "1.4.0", "tag"),
        SetterChange(17, "apps:web", "old/name", "ghcr.io/acme/web", "name"),
        SetterChange(19, "apps:web", "ghcr.io/acme/web:0.9", "ghcr.io/acme/web:1.4.0"),
    )
    assert result.unknown == (UnknownMarker(20, "apps:missing"),)
    assert rewrite(result.text, CHOICES).text == result.text  # idempotent


def test_pinned_digests_follow_flux() -> None:
    text = (f"image: web:1 # {marker('apps:web')}\ntag: '1' # {marker('apps:web:tag')}\n"
            f"digest: x # {marker('apps:web:digest')}\nname: n # {marker('apps:web:name')}\n")
    out = rewrite(text, CHOICES, pin_digest=True).text
    assert yaml.safe_load(out) == {"image": f"ghcr.io/acme/web:1.4.0@{DIGEST}",
                                   "tag": f"1.4.0@{DIGEST}", "digest": DIGEST,
                                   "name": "ghcr.io/acme/web"}
    with pytest.raises(ManifestError, match="apps:db chose no digest"):
        rewrite(f"image: x # {marker('apps:db')}\n", CHOICES, pin_digest=True)


def test_crlf_and_trailing_whitespace_are_kept() -> None:
    text = f"a: 1  \r\nimage: web:1 # {marker('apps:web')}   \r\nb: 'q'\r\n"
    out = rewrite(text, CHOICES).text
    assert out == text.replace("web:1 #", "ghcr.io/acme/web:1.4.0 #")


def test_a_marker_inside_a_string_is_not_a_comment() -> None:
    text = f"a: '#{marker('apps:db')}' # {marker('apps:web')}\nb: |\n  x # {marker('apps:web')}\n"
    result = rewrite(text, CHOICES)
    assert yaml.safe_load(result.text) == {"a": "ghcr.io/acme/web:1.4.0",
                                           "b": f"x # {marker('apps:web')}\n"}
    assert [c.line for c in result.changes] == [1]


def test_text_without_markers_is_returned_as_is() -> None:
    text = "not: [valid yaml\n"
    assert rewrite(text, CHOICES).text is text


@pytest.mark.parametrize(("text", "error"), [
    (f"image: # {marker('apps:web')}\n  a: 1\n", "line 1: .* marks a mapping"),
    (f"image: # {marker('apps:web')}\n- a\n", "line 1: .* marks a list"),
    (f"image: [a, b] # {marker('apps:web')}\n", "line 1: .* marks a list"),
    (f"image: | # {marker('apps:web')}\n  a\n", "line 1: .* marks a block scalar"),
    (f"image: # {marker('apps:web')}\n", "line 1: .* marks an empty value"),
    (f"a: 1\nimage: &x a # {marker('apps:web')}\n", "line 2: .* anchor or tag"),
    (f"image: a # {marker('web')}\n", "line 1: image policy marker 'web' is not NAMESPACE:NAME"),
    ('image: a # {"$imagepolicy": apps:web}\n', "line 1: malformed image policy marker"),
    (f"image: a: b # {marker('apps:web')}\n", "line 1: invalid YAML"),
])
def test_a_marker_on_something_else_is_an_error_naming_file_and_line(text: str,
                                                                      error: str) -> None:
    with pytest.raises(ManifestError, match=f"^deploy/web.yaml: {error}"):
        rewrite(text, CHOICES, source="deploy/web.yaml")


def test_a_value_that_cannot_stay_plain_is_refused() -> None:
    odd = {"apps:web": Choice("web", "1 #x")}
    with pytest.raises(ManifestError, match="cannot be written as a plain YAML value"):
        rewrite(f"image: a # {marker('apps:web')}\n", odd)
    quoted = rewrite(f"image: 'a' # {marker('apps:web')}\n", odd).text
    assert yaml.safe_load(quoted) == {"image": "web:1 #x"}


def test_update_tree_writes_only_files_that_change(tmp_path: Path) -> None:
    (tmp_path / "apps" / "sub").mkdir(parents=True)
    marked = tmp_path / "apps" / "web.yaml"
    marked.write_bytes(f"image: web:1 # {marker('apps:web')}\r\n".encode())
    marked.chmod(0o640)
    current = tmp_path / "apps" / "sub" / "db.yml"
    current.write_text(f"image: registry.local:5000/db:15.2 # {marker('apps:db')}\n")
    plain = tmp_path / "apps" / "plain.yaml"
    plain.write_text("a: 1\n")
    (tmp_path / "apps" / "notes.txt").write_text(f"image: x # {marker('apps:web')}\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text(f"image: x # {marker('apps:web')}\n")
    (tmp_path / "apps" / "link.yaml").symlink_to(outside)
    (tmp_path / "apps" / "linkdir").symlink_to(tmp_path.parent, target_is_directory=True)
    before = {p: p.stat().st_mtime_ns for p in (current, plain)}

    updates = update_tree(tmp_path, "apps", CHOICES)

    assert [(u.path, u.changed) for u in updates] == [("apps/web.yaml", True)]
    assert marked.read_bytes() == f"image: ghcr.io/acme/web:1.4.0 # {marker('apps:web')}\r\n".encode()
    assert marked.stat().st_mode & 0o777 == 0o640
    assert {p: p.stat().st_mtime_ns for p in (current, plain)} == before
    assert outside.read_text() == f"image: x # {marker('apps:web')}\n"
    assert (tmp_path / "apps" / "notes.txt").read_text().startswith("image: x")
    outside.unlink()


@pytest.mark.parametrize("path", ["../x", "/etc", "link"])
def test_update_path_must_stay_in_the_tree(tmp_path: Path, path: str) -> None:
    (tmp_path / "link").symlink_to(tmp_path.parent, target_is_directory=True)
    with pytest.raises(InputError, match="update path"):
        update_tree(tmp_path, path, CHOICES)


def test_unknown_policies_are_reported_and_the_file_left_alone(tmp_path: Path) -> None:
    text = f"image: a:1 # {marker('apps:other')}\n"
    (tmp_path / "x.yaml").write_text(text)
    [update] = update_tree(tmp_path, ".", CHOICES)
    assert (update.path, update.changed, update.unknown) == (
        "x.yaml", False, (UnknownMarker(1, "apps:other"),))
    assert (tmp_path / "x.yaml").read_text() == text


# -- properties ---------------------------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_IMAGE = st.builds(lambda h, r, t: f"{h}.io/{r}:{t}", _WORD, _WORD, _WORD)
_COMMENT = st.text(alphabet="abc XYZ#'\"{}:$-", max_size=12).filter(lambda c: "\n" not in c)
_REFS = ["apps:web", "apps:web:tag", "apps:web:name", "apps:db", "apps:missing"]


@dataclass(frozen=True)
class _Line:
    prefix: str
    value: str  # as written, quotes included
    suffix: str
    ref: str | None  # the marker's policy, None when unmarked

    @property
    def text(self) -> str:
        return self.prefix + self.value + self.suffix


@st.composite
def _value_line(draw: st.DrawFn, prefix: str) -> _Line:
    value = draw(_IMAGE)
    quote = draw(st.sampled_from(["", "'", '"']))
    gap = draw(st.sampled_from([" ", "  ", "    "]))
    ref = draw(st.one_of(st.none(), st.sampled_from(_REFS)))
    tail = draw(st.sampled_from(["", " ", "  "]))  # PyYAML refuses a trailing tab
    if ref is not None:
        suffix = f"{gap}# {marker(ref)}{tail}"
    else:
        comment = draw(st.one_of(st.none(), _COMMENT))
        suffix = f"{gap}#{comment}{tail}" if comment is not None else tail
    return _Line(prefix, f"{quote}{value}{quote}", suffix, ref)


@st.composite
def _documents(draw: st.DrawFn) -> list[_Line]:
    lines: list[_Line] = []
    for index in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            lines.append(draw(_value_line(f"key{index}: ")))
        else:
            lines.append(_Line(f"list{index}:", "", draw(st.sampled_from(["", " # items"])),
                               None))
            indent = " " * draw(st.integers(0, 4))
            for _ in range(draw(st.integers(1, 3))):
                lines.append(draw(_value_line(f"{indent}- ")))
        if draw(st.booleans()):
            lines.append(_Line(draw(st.sampled_from(["# note", "", "  # x"])), "", "", None))
    return lines


def _new_value(ref: str) -> str:
    name, _, field = ref.partition(":")[2].partition(":")
    choice = CHOICES.get(f"apps:{name}")
    assert choice is not None
    return {"tag": choice.tag, "name": choice.image}.get(field, f"{choice.image}:{choice.tag}")


@given(_documents(), st.sampled_from(["\n", "\r\n"]))
def test_only_marked_values_change_and_the_rest_stays_byte_identical(
    lines: list[_Line], newline: str
) -> None:
    text = newline.join(line.text for line in lines) + newline
    result = rewrite(text, CHOICES)
    out = result.text.split(newline)
    assert len(out) == len(lines) + 1 and out[-1] == ""
    for line, written in zip(lines, out, strict=False):
        if line.ref is None or line.ref == "apps:missing":
            assert written == line.text
            continue
        assert written.startswith(line.prefix) and written.endswith(line.suffix)
        value = written[len(line.prefix):len(written) - len(line.suffix)]
        quote = line.value[0] if line.value[0] in "'\"" else ""
        assert value == f"{quote}{_new_value(line.ref)}{quote}"
    assert len(result.changes) <= sum(1 for line in lines if line.ref not in (None,
                                                                               "apps:missing"))
    again = rewrite(result.text, CHOICES)
    assert again.text == result.text and again.changes == ()
    assert yaml.safe_load(result.text) is not None or not text.strip()



def test_a_file_starting_with_a_byte_order_mark_is_rewritten_in_place() -> None:
    # editors on Windows save YAML with a BOM; PyYAML's positions do not count it
    for newline in ("\n", "\r\n"):
        text = (f"\ufeffa: 1{newline}image: ghcr.io/acme/web:1.0.0 # {marker('apps:web')}"
                f"{newline}b: 2{newline}")
        result = rewrite(text, CHOICES)
        assert result.text == text.replace("web:1.0.0", "web:1.4.0")
        assert [(c.line, c.new) for c in result.changes] == [(2, "ghcr.io/acme/web:1.4.0")]


def test_a_long_file_with_many_markers_is_rewritten_in_linear_time() -> None:
    # each marker used to scan every value and every string of the file (5,000: ~70 s)
    block = f"image: ghcr.io/acme/web:1.0.0 # {marker('apps:web')}\nother: x\n"
    text = "".join(f"item{i}:\n  " + block.replace("\n", "\n  ", 1) for i in range(5000))
    started = time.monotonic()
    result = rewrite(text, CHOICES)
    assert time.monotonic() - started < 5
    assert len(result.changes) == 5000
    assert result.text == text.replace("web:1.0.0", "web:1.4.0")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_a_unicode_line_separator_before_a_marker_does_not_hide_it(separator: str) -> None:
    # YAML breaks lines at these too; the markers' lines are counted by '\n' only
    text = (f"note: \"a{separator}b\"\n"
            f"image: ghcr.io/acme/web:1.0.0 # {marker('apps:web')}\n")
    result = rewrite(text, CHOICES)
    assert result.text == text.replace("web:1.0.0", "web:1.4.0")
    assert [c.line for c in result.changes] == [2]


@pytest.mark.parametrize(("before", "tag", "after"), [
    ("1.0.0", "1.10", '"1.10"'),            # would read back as the float 1.1
    ("main-abc", "1700000000", '"1700000000"'),  # an int (Helm prints 1.7e+09)
    ("v1", "true", '"true"'),
    ("v1", "1e3", '"1e3"'),
    ("1.0.0", "1.10.0", "1.10.0"),          # still a string: left plain
    ("5", "6", "6"),                        # written as a number already: kept so
])
def test_a_plain_string_stays_a_string(before: str, tag: str, after: str) -> None:
    text = f"tag: {before} # {marker('apps:web:tag')}\n"
    result = rewrite(text, {"apps:web": Choice("ghcr.io/acme/web", tag)})
    assert result.text == f"tag: {after} # {marker('apps:web:tag')}\n"
    assert yaml.safe_load(result.text)["tag"] == (6 if tag == "6" else tag)
