"""Turn a failed ``kustomize build`` into one short ManifestError naming the kustomization.

kustomize's messages may quote content: a patch body, a node it could not edit, a
generator literal. The message is cut to its first line, before any quoted block, and
bounded; absolute paths become paths relative to the tree; and every value a secret
generator or a Secret manifest below the build's folders holds is redacted. Only the
error path pays for this.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Iterator

import yaml

from gitops.errors import ManifestError
from gitops.renderers._paths import Tree, read_bounded
from gitops.renderers.kustomize_graph import KustomizeGraph
from gitops.urls import redact

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = ["build_error"]

_MAX_MESSAGE = 300
_MIN_SECRET = 4
_SCAN_LIMIT = 1 << 20
# kubectl logs through klog: E1207 01:54:26.381366  7130 run.go:72] "command failed" err="..."
_KLOG_QUOTED = re.compile(r'err="((?:[^"\\]|\\.)*)"')
_KLOG_BLOCK = re.compile(r"err=<\n(.*?)\n\s*>", re.S)
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_GO_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", '"': b'"', "\\": b"\\"}
# Go prints a []byte as "[115 101 99 ...]": content, spelled in numbers
_BYTE_LIST = re.compile(r"\[\d{1,3}(?: \d{1,3}){2,}\]")


def build_error(stderr: bytes, where: str, tree: Tree, graph: KustomizeGraph) -> ManifestError:
    """The ManifestError for a build of ``where`` (a kustomization file) that failed."""
    message = _first_line(_extract(stderr.decode("utf-8", "backslashreplace")))
    message = _BYTE_LIST.sub("[...]", message)
    message = redact(tree.scrub(message), _secrets(graph, tree))
    return ManifestError(where, f"kustomize build failed: {message or 'no message'}")


def _extract(text: str) -> str:
    """The error kustomize (``Error: ...``) or kubectl (klog ``err=...``) reported."""
    block = _KLOG_BLOCK.search(text)
    if block is not None:
        return "\n".join(line.strip() for line in block.group(1).splitlines())
    quoted = _KLOG_QUOTED.search(text)
    if quoted is not None:
        return _go_unquote(quoted.group(1))
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for index, line in enumerate(lines):
        if line.startswith("Error: "):
            return "\n".join([line[len("Error: ") :], *lines[index + 1 :]])
    return "\n".join(lines)


def _go_unquote(text: str) -> str:
    """The string a Go ``%q`` wrote; invalid UTF-8 comes back as ``\\xff``, like Python's."""
    out = bytearray()
    position = 0
    for match in _GO_ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        code = match.group(1)
        if code[0] == "x":
            out.append(int(code[1:], 16))
        elif code[0] in "uU" and len(code) > 1:
            out += chr(int(code[1:], 16)).encode("utf-8", "backslashreplace")
        else:
            out += _GO_ESCAPES.get(code, code.encode("utf-8"))
        position = match.end()
    out += text[position:].encode("utf-8")
    return out.decode("utf-8", "backslashreplace")


def _first_line(message: str) -> str:
    """The message up to the first quoted block or newline, at most a few hundred chars."""
    line = message.strip().split("\n", 1)[0]
    for cut in ("`", "node contents:"):
        line = line.split(cut, 1)[0]
    line = line.strip().rstrip(":").strip()
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _secrets(graph: KustomizeGraph, tree: Tree) -> list[str]:
    """Values to keep out of messages, longest first (so a part never unmasks a whole)."""
    found: set[str] = set()
    for literal in graph.secret_literals:
        found.add(literal)
        found.add(literal.partition("=")[2])
    for path in graph.secret_files:
        found.update(_file_values(path, tree))
    found.update([base64.b64encode(s.encode()).decode("ascii") for s in found if s])
    for path in _yaml_files(graph.folders):
        found.update(_secret_manifest_values(path, tree))
    return sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True)


def _file_values(path: str, tree: Tree) -> Iterator[str]:
    try:
        data = read_bounded(path, tree.rel(path), _SCAN_LIMIT)
    except ManifestError:
        return
    # "backslashreplace" writes invalid bytes as Go's %q does (\xff)
    for text in {data.decode("utf-8", "replace"), data.decode("utf-8", "backslashreplace")}:
        yield text.strip()
        for line in text.splitlines():
            yield line.strip()
            yield line.partition("=")[2].strip()


def _yaml_files(folders: list[str]) -> Iterator[str]:
    for top in folders:
        for base, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in files:
                if name.endswith((".yaml", ".yml", ".json")):
                    yield os.path.join(base, name)


def _secret_manifest_values(path: str, tree: Tree) -> Iterator[str]:
    real = os.path.realpath(path)
    if not tree.contains(real):
        return
    try:
        data = read_bounded(real, tree.rel(real), _SCAN_LIMIT)
        if b"Secret" not in data:
            return
        documents = list(yaml.load_all(data, Loader=_Loader))
    except (ManifestError, yaml.YAMLError):
        return
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        for section in ("data", "stringData"):
            values = doc.get(section)
            if isinstance(values, dict):
                for value in values.values():
                    yield from _value_forms(str(value), decode=section == "data")


def _value_forms(value: str, *, decode: bool) -> Iterator[str]:
    yield value
    if decode:
        with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
            yield base64.b64decode(value, validate=True).decode("utf-8")
    else:
        yield base64.b64encode(value.encode()).decode("ascii")
