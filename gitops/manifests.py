"""Parse and validate manifests: YAML and JSON files into :class:`~gitops.model.Resource`.

Three layers, each usable alone:

* :func:`parse_documents` / :func:`parse_manifests` turn one file's bytes into mappings
  (multi-document YAML, JSON, ``kind: List`` flattened), within :class:`Limits`;
* :func:`check_documents` / :func:`validate_manifests` check each mapping and return
  Resources *as declared* (a namespace only where the manifest names one): the render;
* :func:`place` settles each object's scope from the target, the Kubernetes tables and
  the set's own CRDs, gives namespaced objects without one the default namespace, and
  refuses duplicates: done by the engine after the target is known, never cached;
* :func:`build_resources` is both; :func:`render_tree` renders every
  ``.yaml``/``.yml``/``.json`` file of a tree, :func:`load_tree` renders and places it.

This is the hot path of every plan (10,000 manifests must cost barely more than
PyYAML's C parser needs to read them), so it must never deep-copy a manifest, build a
model per object, parse a file twice or validate deeper than the top-level fields
gitops relies on; the target validates the rest. It must never put a value from a
manifest's body (a Secret's data above all) into an error message: errors name the
file, the document index and the field at fault.

:func:`load_tree` pauses the cyclic garbage collector while it runs (see
:func:`gc_paused`): manifests are acyclic, and scanning them repeatedly would cost a
third of the load.

YAML is read the way kubectl reads it, not quite as PyYAML's safe loader does:
timestamps stay strings and ``!!binary`` stays its base64 text, so every manifest is
plain JSON-ready data.
"""

from __future__ import annotations

import codecs
import gc
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from gitops.errors import ManifestError
from gitops.hooks import declares_hook
from gitops.masking import mask_secret
from gitops.model import Resource, ResourceKey
from gitops.tree import is_manifest_path, walk

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: slower, same results
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "CRD",
    "DEFAULT_LIMITS",
    "Document",
    "IsNamespaced",
    "Limits",
    "PlaceMemo",
    "build_resources",
    "check_documents",
    "crd_kind",
    "crd_kinds",
    "gc_paused",
    "is_cluster_scoped",
    "load_tree",
    "manifest_documents",
    "origin_error",
    "origin_where",
    "parse_documents",
    "parse_manifests",
    "place",
    "render_tree",
    "validate_manifests",
]

_MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one load may read; exceeding one is a ManifestError naming the file.

    ``max_alias_nodes`` bounds how many nodes YAML aliases may *add* to one document
    when expanded (a "billion laughs" document adds billions); documents written out
    in full are bounded by ``max_file_bytes`` alone. ``max_depth`` bounds how deeply
    mappings and sequences nest in one manifest (the root mapping is level 1), aliases
    expanded: every later stage (differ, masking, serializers) may then recurse safely.
    Real objects are far shallower: a Deployment nests about 10 levels, the deepest
    CustomResourceDefinition schemas about 40.
    """

    max_file_bytes: int = 8 * _MiB
    max_total_bytes: int = 512 * _MiB
    max_documents_per_file: int = 10_000
    max_resources: int = 100_000
    max_alias_nodes: int = 100_000
    max_depth: int = 100


DEFAULT_LIMITS = Limits()

#: ``is_namespaced(group, kind)``: True/False when known, None to fall back.
IsNamespaced = Callable[[str, str], bool | None]

#: Cluster-scoped kinds of Kubernetes itself, by (API group, kind).
CLUSTER_SCOPED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ComponentStatus"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("authentication.k8s.io", "SelfSubjectReview"),
        ("authentication.k8s.io", "TokenReview"),
        ("authorization.k8s.io", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "SubjectAccessReview"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("extensions", "PodSecurityPolicy"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("internal.apiserver.k8s.io", "StorageVersion"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
    }
)


def is_cluster_scoped(group: str, kind: str) -> bool:
    """True for a cluster-scoped Kubernetes kind (``("", "Namespace")``, ...).

    Knows Kubernetes' own kinds only; custom resources are namespaced unless a
    callback or a CRD says otherwise (see :func:`build_resources`).
    """
    return (group, kind) in CLUSTER_SCOPED_KINDS


@dataclass(frozen=True, slots=True)
class Document:
    """One manifest and where it came from: ``path`` (relative to the root), the
    zero-based YAML document ``index`` and, for an item of a List, ``item``
    (``"items[3]"``)."""

    manifest: dict[str, Any]
    path: str
    index: int
    item: str = ""

    @property
    def origin(self) -> str:
        """Compact form for :attr:`Resource.origin`: ``apps/web.yaml#2`` (``#2.items[3]``)."""
        return f"{self.path}#{self.index}.{self.item}" if self.item else f"{self.path}#{self.index}"

    @property
    def where(self) -> str:
        """Human form: ``apps/web.yaml (document 2, items[3])``."""
        item = f", {self.item}" if self.item else ""
        return f"{self.path} (document {self.index}{item})"

    def error(self, message: str) -> ManifestError:
        """A ManifestError about this document."""
        text = f"{self.item}: {message}" if self.item else message
        return ManifestError(self.path, text, document=self.index)

    def __repr__(self) -> str:
        manifest = mask_secret(self.manifest) if isinstance(self.manifest, dict) else self.manifest
        return (f"Document(manifest={manifest!r}, path={self.path!r}, index={self.index!r}, "
                f"item={self.item!r})")


# --------------------------------------------------------------------------- parsing


class _TooDeep(Exception):
    """A document nests deeper than the loader's ``max_depth``; ``line`` where, if known."""

    def __init__(self, line: int | None) -> None:
        super().__init__(line)
        self.line = line


class _Loader(_SafeLoader):
    """The safe loader, kubectl-flavoured (no ``date``/``datetime``/``bytes`` values),
    with nesting capped at ``max_depth`` levels."""

    max_depth = DEFAULT_LIMITS.max_depth

    def construct_document(self, node: Any) -> Any:
        """PyYAML's construction, counting levels as it goes.

        PyYAML builds a document one nesting level per round: each round runs the
        generators that fill the collections the previous round created. Counting the
        rounds caps the depth for one addition per level, not a walk of the document
        (aliases, which can nest deeper than the rounds show, are measured by
        :func:`_check_aliases`).
        """
        data = self.construct_object(node)
        depth = 0
        while self.state_generators:
            depth += 1
            if depth > self.max_depth:
                raise _TooDeep(_generator_line(self.state_generators[0]))
            generators, self.state_generators = self.state_generators, []
            for generator in generators:
                for _ in generator:
                    pass
        self.constructed_objects = {}
        self.recursive_objects = {}
        self.deep_construct = False
        return data


def _generator_line(generator: object) -> int | None:
    """The line of the collection a pending PyYAML construction generator fills."""
    frame = getattr(generator, "gi_frame", None)
    node = frame.f_locals.get("node") if frame is not None else None
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _construct_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _construct_binary_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return "".join(str(loader.construct_scalar(node)).split())


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _construct_binary_text)


def parse_manifests(
    data: bytes, path: str, *, limits: Limits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Parse one file's bytes into its manifests (mappings), Lists flattened.

    ``path`` (relative to the root) names the file in errors; a ``.json`` suffix reads
    it as JSON, anything else as YAML. Empty documents are skipped. Only the shape is
    checked here (each manifest a mapping); :func:`validate_manifests` does the rest.
    Raises :class:`~gitops.errors.ManifestError`.
    """
    return [doc.manifest for doc in parse_documents(data, path, limits=limits)]


def parse_documents(data: bytes, path: str, *, limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    """Like :func:`parse_manifests`, keeping each manifest's document and item index."""
    if len(data) > limits.max_file_bytes:
        raise ManifestError(path, _too_big(len(data), limits.max_file_bytes))
    raw = _load_json(data, path, limits) if path.endswith(".json") else _load_yaml(data, path, limits)
    documents: list[Document] = []
    for index, obj in raw:
        if obj is None:
            continue
        if not isinstance(obj, dict):
            raise ManifestError(
                path, f"a manifest must be a mapping, got {_describe(obj)}", document=index
            )
        if _is_list(obj):
            _flatten(obj, path, index, "", documents)
        else:
            documents.append(Document(obj, path, index))
    return documents


def _is_list(obj: dict[str, Any]) -> bool:
    """``kind: List``, or any ``*List`` kind with ``items``, as kubectl flattens them."""
    kind = obj.get("kind")
    return kind == "List" or (
        isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list)
    )


def _flatten(obj: dict[str, Any], path: str, index: int, prefix: str, out: list[Document]) -> None:
    items = obj.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        where = f"{prefix}: " if prefix else ""
        raise ManifestError(
            path, f"{where}items of a List must be a sequence, got {_describe(items)}", index
        )
    for position, item in enumerate(items):
        label = f"{prefix}.items[{position}]" if prefix else f"items[{position}]"
        if not isinstance(item, dict):
            raise ManifestError(
                path, f"{label}: a manifest must be a mapping, got {_describe(item)}", index
            )
        if _is_list(item):
            _flatten(item, path, index, label, out)
        else:
            out.append(Document(item, path, index, label))


_MappingNode, _ScalarNode = yaml.MappingNode, yaml.ScalarNode


def _load_yaml(data: bytes, path: str, limits: Limits) -> list[tuple[int, Any]]:
    """Every document of a YAML stream, with its index; aliases checked when present.

    Errors name the file, the document, the line and column and the kind of problem,
    and never quote the input (see :func:`_yaml_problem`); nor does the exception they
    are raised from (PyYAML's quotes the offending text), so it is not chained.
    """
    # Expansion needs an anchor ("&") and an alias ("*"), bytes 0x26 and 0x2A in every
    # encoding PyYAML reads: without both, nothing can expand and this is load_all.
    check_aliases = b"&" in data and b"*" in data
    try:
        loader = _Loader(data)  # the pure-Python reader checks the first bytes already
    except yaml.YAMLError as exc:
        raise ManifestError(path, _yaml_problem(exc, limits), document=0) from None
    loader.max_depth = limits.max_depth
    documents: list[tuple[int, Any]] = []
    index = 0
    problem: str | None = None
    try:
        while loader.check_node():
            if index >= limits.max_documents_per_file:
                raise ManifestError(
                    path, f"more than {limits.max_documents_per_file} documents (limit)"
                )
            node = loader.get_node()
            if check_aliases and node is not None:
                _check_aliases(node, path, index, limits)
            documents.append((index, loader.construct_document(node)))
            # Drop the node graph now: kept alive while the next document is composed,
            # it is promoted to older GC generations and doubles collection time.
            del node
            index += 1
    except yaml.YAMLError as exc:
        problem = _yaml_problem(exc, limits)
    except _TooDeep as exc:
        problem = _nested("YAML", limits, exc.line)
    except RecursionError:
        problem = _nested("YAML", limits, None)
    except (ValueError, KeyError, IndexError, OverflowError, TypeError) as exc:
        # a scalar its tag cannot read (`!!int x`, `!!bool x`, a 5,000-digit integer):
        # PyYAML lets the conversion's own error out, and that quotes the value
        problem = f"invalid YAML{_failed_node_where(exc)}: a value does not match its type " \
            "(!!int, !!float or !!bool)"
    finally:
        loader.dispose()
    if problem is not None:
        raise ManifestError(path, problem, document=index)
    return documents


def _nested(language: str, limits: Limits, line: int | None) -> str:
    where = f" at line {line}" if line else ""
    return f"{language} nested more than {limits.max_depth} levels deep{where} (limit)"


def _failed_node_where(exc: BaseException) -> str:
    """`` at line L, column C`` of the node whose construction raised ``exc``: the
    innermost frame of the traceback that has one (a constructor's ``node`` argument)."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        mark = getattr(tb.tb_frame.f_locals.get("node"), "start_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        tb = tb.tb_next
    return where


def _check_aliases(root: yaml.Node, path: str, index: int, limits: Limits) -> None:
    """Refuse a document whose aliases would add more than ``max_alias_nodes`` nodes,
    nest it deeper than ``max_depth`` levels once expanded, or recurse.

    Linear in the composed graph: each distinct collection's expanded size is computed
    once; every later visit of it is an alias occurrence and adds that size, at the
    level it is placed (its height is measured then, once). Scalars are skipped (an
    aliased scalar adds one node, as writing it out would). Recursion follows YAML
    nesting and stops at ``max_depth`` levels.
    """
    sizes: dict[int, int] = {}  # id(collection) -> expanded size; -1 while being sized
    heights: dict[int, int] = {}  # id(aliased collection) -> levels it spans, expanded
    known_size = sizes.get
    mapping, scalar = _MappingNode, _ScalarNode  # closure cells: faster than globals
    limit, max_depth = limits.max_alias_nodes, limits.max_depth
    added = 0

    def too_deep(node: yaml.Node) -> ManifestError:
        return ManifestError(path, _nested("YAML", limits, node.start_mark.line + 1), index)

    def height(node: yaml.Node) -> int:
        found = heights.get(id(node))
        if found is None:
            value = node.value
            children = [n for pair in value for n in pair] if node.__class__ is mapping \
                else value
            found = 1 + max((height(n) for n in children if n.__class__ is not scalar),
                            default=0)
            heights[id(node)] = found
        return found

    def size(node: yaml.Node, level: int) -> int:
        nonlocal added
        key = id(node)
        known = known_size(key)
        if known is not None:
            if known < 0:
                raise ManifestError(path, "a YAML alias refers to a node containing itself", index)
            if level + height(node) - 1 > max_depth:
                raise too_deep(node)
            added += known
            if added > limit:
                raise ManifestError(
                    path,
                    f"YAML aliases expand this document by more than {limit} nodes; "
                    "refusing it as a possible alias bomb",
                    document=index,
                )
            return known
        if level > max_depth:
            raise too_deep(node)
        sizes[key] = -1
        value = node.value
        below = level + 1
        if node.__class__ is mapping:
            total = 1 + 2 * len(value)
            for item_key, item_value in value:
                if item_value.__class__ is not scalar:
                    total += size(item_value, below) - 1
                if item_key.__class__ is not scalar:
                    total += size(item_key, below) - 1
        else:
            total = 1 + len(value)
            for item in value:
                if item.__class__ is not scalar:
                    total += size(item, below) - 1
        sizes[key] = total
        return total

    if root.__class__ is not scalar:
        size(root, 1)


#: What PyYAML's messages may quote besides the input: libyaml's indicators and PyYAML's
#: token names (``expected '<document start>', but found '<scalar>'``).
_SAFE_QUOTED = frozenset(
    f"'{text}'"
    for text in (":", ",", "]", "}", "[", "{", "!", "-", ">", ".", " ", "?", "<directive>",
                 "<document start>", "<document end>", "<stream start>", "<stream end>",
                 "<block sequence start>", "<block mapping start>", "<block end>",
                 "<alias>", "<anchor>", "<tag>", "<scalar>")
)
# A Python repr of a string: what PyYAML and json interpolate the input as.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" r'|"(?:[^"\\]|\\.)*"', re.DOTALL)
_UNKNOWN_TAG = (
    "unknown tag (only YAML's standard tags are read; quote a value that starts with '!')"
)


def _unquoted(text: str) -> str:
    """A parser's message with every piece of input it quotes replaced by ``(...)``."""
    if text.startswith("could not determine a constructor for the tag"):
        return _UNKNOWN_TAG
    return _QUOTED.sub(lambda m: m.group() if m.group() in _SAFE_QUOTED else "(...)", text)


def _yaml_problem(exc: yaml.YAMLError, limits: Limits) -> str:
    """A one-line description of a PyYAML error, without quoting the input.

    Names the line and column and the kind of problem. PyYAML's own messages quote
    what they read (a tag, an anchor, a character): those quotes are replaced.
    """
    if isinstance(exc, yaml.reader.ReaderError):
        if "characters are not allowed" in exc.reason:
            return f"contains a control character (offset {exc.position}); a manifest must be text"
        return f"not valid UTF-8 text ({_unquoted(exc.reason)} at offset {exc.position})"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _unquoted(exc.problem or type(exc).__name__)
        context = _unquoted(exc.context) if exc.context else ""
        started = exc.context_mark
        since = f" started at line {started.line + 1}" if started and started is not mark else ""
        if problem == "exceeded maximum nesting depth":  # libyaml's own cap
            return _nested("YAML", limits, mark.line + 1 if mark else None)
        if context.startswith("found duplicate anchor"):
            first = f" (first defined at line {started.line + 1})" if started else ""
            return f"invalid YAML{where}: duplicate anchor{first}"
        detail = f"{problem} ({context}{since})" if context else problem
        return f"invalid YAML{where}: {detail}"
    return f"invalid YAML: {type(exc).__name__}"


def _load_json(data: bytes, path: str, limits: Limits) -> list[tuple[int, Any]]:
    """A JSON file holds one object (a List to hold several); blank means none.

    Errors never quote the input, and are not chained to the decoder's.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        return []
    problem = None
    try:
        obj = json.loads(data)
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 text ({exc.reason} at offset {exc.start})"
    except json.JSONDecodeError as exc:
        problem = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {_unquoted(exc.msg)}"
    except RecursionError:
        problem = _nested("JSON", limits, None)
    except ValueError:  # an integer too long to convert, say; its message quotes it
        problem = "invalid JSON: a number cannot be read"
    if problem is None and _json_too_deep(data, obj, limits.max_depth):
        problem = _nested("JSON", limits, None)
    if problem is not None:
        raise ManifestError(path, problem, document=0)
    if isinstance(obj, list):
        raise ManifestError(
            path, "a JSON file must hold one object, not an array (use kind: List for several)"
        )
    return [(0, obj)]


def _json_too_deep(data: bytes, obj: Any, max_depth: int) -> bool:
    """Whether ``obj`` nests deeper than ``max_depth`` levels.

    Every level opens a bracket, so a file with at most ``max_depth`` of them is
    shallow enough without looking; otherwise the containers are walked level by level.
    """
    if data.count(b"{") + data.count(b"[") <= max_depth:
        return False
    level = [obj]
    depth = 0
    while level:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return False
        depth += 1
        if depth > max_depth:
            return True
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return False


# ------------------------------------------------------------------------ validation

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Kubernetes' path-segment rule ("/" and "%") plus control characters.
_BAD_NAME_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f/%]")
_BAD_TYPE_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f]")
_MAX_NAME = 253
_MAX_LABEL = 63


class _Checked(NamedTuple):
    doc: Document
    api_version: str
    group: str
    kind: str
    name: str
    namespace: str


_TYPE_NAMES = {dict: "a mapping", list: "a sequence", str: "a string", bool: "a boolean"}


def _describe(value: object) -> str:
    """The YAML-ish type of a value for a message (never the value itself)."""
    if value is None:
        return "null"
    for cls, label in _TYPE_NAMES.items():
        if isinstance(value, cls):
            return label
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _shown(value: str) -> str:
    """A name or namespace for a message: repr'd, so control characters show, and short."""
    return repr(value if len(value) <= 64 else value[:61] + "...")


def _required_string(doc: Document, field: str, value: object) -> str:
    if isinstance(value, str) and value:
        return value
    got = "missing" if value is None else f"got {_describe(value)}"
    raise doc.error(f"{field} must be a non-empty string ({got})")


def _check_api_version(doc: Document, value: object) -> tuple[str, str]:
    api_version = _required_string(doc, "apiVersion", value)
    group, _, version = api_version.rpartition("/")
    if not version or "/" in group or (group == "" and "/" in api_version):
        raise doc.error(f"apiVersion {_shown(api_version)} must be VERSION or GROUP/VERSION")
    if _BAD_TYPE_CHAR.search(api_version):
        raise doc.error(
            f"apiVersion {_shown(api_version)} contains whitespace or control characters"
        )
    return api_version, group


def _check_kind(doc: Document, value: object) -> str:
    kind = _required_string(doc, "kind", value)
    if "/" in kind or _BAD_TYPE_CHAR.search(kind):
        raise doc.error(f"kind {_shown(kind)} contains '/', whitespace or control characters")
    return kind


def _check_name(doc: Document, metadata: Mapping[str, Any]) -> str:
    name = metadata.get("name")
    if name is None and metadata.get("generateName"):
        annotations = metadata.get("annotations")
        if not (isinstance(annotations, dict) and declares_hook(annotations)):
            raise doc.error(
                "metadata.generateName without metadata.name is not supported: a GitOps "
                "resource needs a fixed name, or every sync would create a new object "
                "(only a hook, annotated argocd.argoproj.io/hook, may have a generated name)"
            )
        # A hook's key names its prefix; the engine generates the name at each run.
        name = _required_string(doc, "metadata.generateName", metadata["generateName"])
    name = _required_string(doc, "metadata.name", name)
    if len(name) > _MAX_NAME:
        raise doc.error(f"metadata.name is {len(name)} characters long, over {_MAX_NAME}")
    if name in (".", "..") or _BAD_NAME_CHAR.search(name):
        raise doc.error(
            f"metadata.name {_shown(name)} is not a valid name: it may not be '.' or '..' "
            "nor contain '/', '%' or control characters"
        )
    return name


def _check_namespace(doc: Document, metadata: Mapping[str, Any]) -> str:
    namespace = metadata.get("namespace")
    if namespace is None or namespace == "":
        return ""
    if not isinstance(namespace, str):
        raise doc.error(f"metadata.namespace must be a string, got {_describe(namespace)}")
    if len(namespace) > _MAX_LABEL or not _DNS_LABEL.fullmatch(namespace):
        raise doc.error(
            f"metadata.namespace {_shown(namespace)} is not a valid DNS label "
            f"(lowercase letters, digits and '-', at most {_MAX_LABEL} characters)"
        )
    return namespace


def _check(doc: Document) -> _Checked:
    manifest = doc.manifest
    if not isinstance(manifest, dict):
        raise doc.error(f"a manifest must be a mapping, got {_describe(manifest)}")
    api_version, group = _check_api_version(doc, manifest.get("apiVersion"))
    kind = _check_kind(doc, manifest.get("kind"))
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        got = "missing" if metadata is None else f"got {_describe(metadata)}"
        raise doc.error(f"metadata must be a mapping ({got})")
    name = _check_name(doc, metadata)
    return _Checked(doc, api_version, group, kind, name, _check_namespace(doc, metadata))


#: ``(group, kind)`` of a CustomResourceDefinition.
CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")


def crd_kind(manifest: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(group, kind)`` a CustomResourceDefinition manifest defines, or None."""
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return None
    names = spec.get("names")
    group, kind = spec.get("group"), names.get("kind") if isinstance(names, Mapping) else None
    if isinstance(group, str) and isinstance(kind, str):
        return group, kind
    return None


def crd_kinds(resources: Iterable[Resource]) -> set[tuple[str, str]]:
    """The ``(group, kind)`` pairs the CustomResourceDefinitions among ``resources`` define."""
    kinds: set[tuple[str, str]] = set()
    for res in resources:
        if (res.key.group, res.key.kind) == CRD:
            defined = crd_kind(res.manifest)
            if defined is not None:
                kinds.add(defined)
    return kinds


def _scope_resolver(
    is_namespaced: IsNamespaced | None, crds: Mapping[tuple[str, str], bool]
) -> Callable[[str, str], bool]:
    """Callback first, then Kubernetes' own kinds, then CRDs in the set, else namespaced."""
    cache: dict[tuple[str, str], bool] = {}

    def namespaced(group: str, kind: str) -> bool:
        group_kind = (group, kind)
        answer = cache.get(group_kind)
        if answer is None:
            asked = is_namespaced(group, kind) if is_namespaced is not None else None
            if isinstance(asked, bool):
                answer = asked
            elif group_kind in CLUSTER_SCOPED_KINDS:
                answer = False
            else:
                answer = crds.get(group_kind, True)
            cache[group_kind] = answer
        return answer

    return namespaced


def _with_namespace(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A shallow copy with ``metadata.namespace`` set (or removed when empty).

    Copies two small dicts instead of mutating: the caller's objects, and metadata
    shared through a YAML alias, stay as they were.
    """
    metadata = dict(manifest["metadata"])
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    copy = dict(manifest)
    copy["metadata"] = metadata
    return copy


def _check_default_namespace(namespace: str) -> None:
    if len(namespace) > _MAX_LABEL or not _DNS_LABEL.fullmatch(namespace):
        raise ValueError(f"default namespace {namespace!r} is not a valid DNS label")


def check_documents(
    documents: Iterable[Document], *, limits: Limits = DEFAULT_LIMITS
) -> list[Resource]:
    """Validate parsed documents and return their Resources as declared, in order.

    A resource's key holds the namespace its manifest names, ``""`` when none:
    :func:`place` settles scope and defaults. Raises
    :class:`~gitops.errors.ManifestError` for the first invalid document.
    """
    docs = documents if isinstance(documents, list) else list(documents)
    if len(docs) > limits.max_resources:
        raise docs[limits.max_resources].error(
            f"more than {limits.max_resources} resources (limit)"
        )
    resources: list[Resource] = []
    for doc in docs:
        checked = _check(doc)
        key = ResourceKey(checked.group, checked.kind, checked.namespace, checked.name)
        resources.append(Resource(key, checked.api_version, doc.manifest, doc.origin))
    return resources


def _crd_scopes(resources: Iterable[Resource]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for the CustomResourceDefinitions among ``resources``."""
    scopes: dict[tuple[str, str], bool] = {}
    for res in resources:
        if (res.key.group, res.key.kind) != CRD:
            continue
        defined = crd_kind(res.manifest)
        scope = (res.manifest.get("spec") or {}).get("scope")
        if defined is not None and scope in ("Namespaced", "Cluster"):
            scopes[defined] = scope == "Namespaced"
    return scopes


def _split_origin(origin: str) -> tuple[str, int | None, str]:
    """``apps/web.yaml#2.items[3]`` -> ``("apps/web.yaml", 2, "items[3]")``."""
    path, sep, rest = origin.rpartition("#")
    if not sep:
        return origin or "<manifests>", None, ""
    index, _, item = rest.partition(".")
    return path, int(index) if index.isdigit() else None, item


def origin_where(origin: str) -> str:
    """A :attr:`Resource.origin` as errors write locations: ``apps/web.yaml (document 2)``."""
    path, index, item = _split_origin(origin)
    if index is None:
        return path
    return Document({}, path, index, item).where


def origin_error(origin: str, message: str) -> ManifestError:
    """A ManifestError for the resource whose :attr:`Resource.origin` is ``origin``."""
    path, index, item = _split_origin(origin)
    text = f"{item}: {message}" if item else message
    return ManifestError(path, text, document=index)


#: :func:`place`'s memo: id(rendered) -> (rendered, namespace it was placed in, placed).
PlaceMemo = dict[int, tuple[Resource, str, Resource]]


def place(
    resources: Iterable[Resource],
    *,
    default_namespace: str = "default",
    is_namespaced: IsNamespaced | None = None,
    memo: PlaceMemo | None = None,
) -> list[Resource]:
    """Settle the scope of each rendered resource; refuse duplicates. In order.

    Namespaced kinds without a namespace get ``default_namespace``; cluster-scoped
    kinds lose any namespace given. Scope comes from ``is_namespaced(group, kind)``
    when it returns a bool, else :func:`is_cluster_scoped`, else the scope a
    CustomResourceDefinition among ``resources`` declares, else namespaced. A resource
    already placed is returned as the same object; with a ``memo`` (kept between calls),
    a resource placed the same way last time gives the same placed object again, and
    afterwards ``memo`` holds exactly this call's resources. Raises
    :class:`~gitops.errors.ManifestError` for a duplicate (naming both places);
    ``ValueError`` for a bad ``default_namespace``.
    """
    _check_default_namespace(default_namespace)
    items = resources if isinstance(resources, list | tuple) else list(resources)
    namespaced = _scope_resolver(is_namespaced, _crd_scopes(items))
    seen: dict[ResourceKey, Resource] = {}
    placed: list[Resource] = []
    fresh: PlaceMemo = {}
    for rendered in items:
        res = rendered
        key = res.key
        if namespaced(key.group, key.kind):
            if not key.namespace:
                key = key._replace(namespace=default_namespace)
                res = _placed(memo, fresh, rendered, default_namespace)
        elif key.namespace or "namespace" in res.manifest["metadata"]:
            key = key._replace(namespace="")
            res = _placed(memo, fresh, rendered, "")
        first = seen.get(key)
        if first is not None:
            raise origin_error(
                res.origin, f"duplicate resource {key}: also defined in {origin_where(first.origin)}"
            )
        seen[key] = res
        placed.append(res)
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    return placed


def _placed(memo: PlaceMemo | None, fresh: PlaceMemo, rendered: Resource, namespace: str) -> Resource:
    """``rendered`` moved into ``namespace`` (``""``: none), reusing the memo's copy."""
    known = memo.get(id(rendered)) if memo is not None else None
    if known is not None and known[0] is rendered and known[1] == namespace:
        res = known[2]
    else:
        res = Resource(rendered.key._replace(namespace=namespace), rendered.api_version,
                       _with_namespace(rendered.manifest, namespace), rendered.origin)
    fresh[id(rendered)] = (rendered, namespace, res)
    return res


def build_resources(
    documents: Iterable[Document],
    *,
    default_namespace: str = "default",
    is_namespaced: IsNamespaced | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Resource]:
    """Validate parsed documents and return their Resources, placed, in order.

    :func:`check_documents` then :func:`place`. Raises
    :class:`~gitops.errors.ManifestError` for the first invalid document or duplicate
    resource (naming both places); ``ValueError`` for a bad ``default_namespace``.
    """
    _check_default_namespace(default_namespace)
    return place(
        check_documents(documents, limits=limits),
        default_namespace=default_namespace,
        is_namespaced=is_namespaced,
    )


def validate_manifests(
    manifests: Iterable[dict[str, Any]],
    *,
    path: str = "<manifests>",
    default_namespace: str | None = "default",
    is_namespaced: IsNamespaced | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Resource]:
    """Check plain manifests (Lists flattened); errors name ``path`` and the index.

    Places them as :func:`build_resources` does, unless ``default_namespace`` is None:
    then they are returned as declared (a renderer's output, for the engine to place).
    """
    documents = manifest_documents(manifests, path)
    if default_namespace is None:
        return check_documents(documents, limits=limits)
    return build_resources(
        documents, default_namespace=default_namespace, is_namespaced=is_namespaced, limits=limits
    )


# --------------------------------------------------------------------------- the tree


def _too_big(size: int, limit: int) -> str:
    return f"file is {size} bytes, over the limit of {limit} bytes"


def _read(path: Path, relpath: str, budget: int, limits: Limits) -> bytes:
    """Read one file, refusing it before reading when it is too big."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_file_bytes:
                raise ManifestError(relpath, _too_big(size, limits.max_file_bytes))
            if size > budget:
                raise ManifestError(
                    relpath, f"the tree's manifests exceed {limits.max_total_bytes} bytes (limit)"
                )
            data = handle.read(size + 1)
            if len(data) > size:  # it grew since fstat: read on, one byte past the limit
                data += handle.read(limits.max_file_bytes + 1 - len(data))
            return data
    except OSError as exc:
        raise ManifestError(relpath, f"cannot read: {exc.strerror or exc}") from exc


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of a ``with`` block.

    Loading creates millions of acyclic containers that the collector would scan
    again and again for nothing (a third of the load time of 10,000 manifests when
    they are kept). Reference counting still frees everything; the collector resumes
    afterwards, and is left alone if it was already disabled. Nested and concurrent
    pauses share one pause. :func:`load_tree` uses it; a caller holding many
    manifests at once (a plan) may wrap more.
    """
    global _gc_pausers
    with _gc_lock:
        if _gc_pausers == 0 and not gc.isenabled():
            paused = False
        else:
            paused = True
            _gc_pausers += 1
            gc.disable()
    try:
        yield
    finally:
        if paused:
            with _gc_lock:
                _gc_pausers -= 1
                if _gc_pausers == 0:
                    gc.enable()


def load_tree(
    root: str | os.PathLike[str],
    *,
    default_namespace: str = "default",
    limits: Limits = DEFAULT_LIMITS,
    is_namespaced: IsNamespaced | None = None,
) -> list[Resource]:
    """Load, validate and place every ``.yaml``/``.yml``/``.json`` file under ``root``.

    :func:`render_tree` then :func:`place`. Raises
    :class:`~gitops.errors.ManifestError` naming the file (relative to ``root``) and
    the document at fault.
    """
    _check_default_namespace(default_namespace)
    with gc_paused():
        return place(
            render_tree(root, limits=limits),
            default_namespace=default_namespace,
            is_namespaced=is_namespaced,
        )


#: One file's rendered resources, by (relative path, content digest).
FileCache = dict[tuple[str, bytes], tuple[Resource, ...]]


def render_tree(
    root: str | os.PathLike[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    cache: FileCache | None = None,
) -> list[Resource]:
    """Every resource of every manifest file under ``root``, validated, as declared.

    Files are walked by :func:`gitops.tree.walk` (sorted, hidden and ``.sourceignore``'d
    entries skipped, symlinks kept inside the root); other files are ignored. With a
    ``cache`` (content-addressed: a file's path and the digest of its bytes), a file
    whose content was rendered before is not parsed again; afterwards ``cache`` holds
    exactly this tree's files, so it never outgrows one tree. Raises
    :class:`~gitops.errors.ManifestError` naming the file and document at fault.
    """
    if not os.path.isdir(root):
        raise ManifestError(os.fspath(root), "not a directory")
    resources: list[Resource] = []
    budget = limits.max_total_bytes
    fresh: FileCache = {}
    with gc_paused():
        for item in walk(root):
            if not is_manifest_path(item.relpath):
                continue
            data = _read(item.path, item.relpath, budget, limits)
            budget -= len(data)
            if budget < 0:
                raise ManifestError(
                    item.relpath,
                    f"the tree's manifests exceed {limits.max_total_bytes} bytes (limit)",
                )
            entry = (item.relpath, hashlib.blake2b(data, digest_size=20).digest())
            found = cache.get(entry) if cache is not None else None
            if found is None:
                found = tuple(check_documents(parse_documents(data, item.relpath, limits=limits),
                                              limits=limits))
            fresh[entry] = found
            resources.extend(found)
            if len(resources) > limits.max_resources:
                raise ManifestError(
                    item.relpath,
                    f"the tree holds more than {limits.max_resources} resources (limit)",
                )
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return resources


def manifest_documents(manifests: Iterable[dict[str, Any]], path: str) -> list[Document]:
    """Plain manifests as Documents named ``path`` and their index, Lists flattened.

    The first half of :func:`validate_manifests`, for a renderer that transforms
    documents (substitution) before :func:`check_documents` validates them.
    """
    documents: list[Document] = []
    for index, manifest in enumerate(manifests):
        if isinstance(manifest, dict) and _is_list(manifest):
            _flatten(manifest, path, index, "", documents)
        else:
            documents.append(Document(manifest, path, index))
    return documents
