"""Options of the Kubernetes target and the ``k8s:`` URL grammar.

``k8s:`` is the current kubeconfig context, ``k8s://CONTEXT`` a named one (percent-encode
``?``, ``#`` and ``%`` in a context name); options go in the query, with the same names as
the keyword options: ``k8s://kind-dev?force=false&qps=20&watch=true``. The target's
``url_options`` is :func:`parse_url`; the registry validates URL and keyword options
together, once, into :class:`KubernetesOptions` (``gitops.options``). Pure parsing and
validation: this module must never read a kubeconfig or touch the network.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

from pydantic import Field, field_validator

from gitops.errors import InvalidURLError
from gitops.options import PluginOptions

__all__ = [
    "DEFAULT_FIELD_MANAGER",
    "DEFAULT_INVENTORY_NAMESPACE",
    "URL_OPTIONS",
    "KubernetesOptions",
    "parse_url",
]

DEFAULT_FIELD_MANAGER = "gitops"
DEFAULT_INVENTORY_NAMESPACE = "gitops-system"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubernetesOptions(PluginOptions):
    """Validated options of :class:`~gitops.targets.kubernetes.KubernetesTarget`."""

    context: str | None = Field(default=None, description="kubeconfig context; None: current")
    kubeconfig: str | None = Field(default=None, description="kubeconfig path(s); $KUBECONFIG")
    field_manager: str = Field(default=DEFAULT_FIELD_MANAGER, min_length=1, max_length=128)
    force: bool = Field(default=True, description="take over fields other managers own")
    adopt: bool = Field(default=False, description="take objects other inventories own")
    inventory_namespace: str = DEFAULT_INVENTORY_NAMESPACE
    create_namespaces: bool = Field(default=False, description="create missing namespaces")
    propagation_policy: Literal["Background", "Foreground", "Orphan"] = "Background"
    field_validation: Literal["Strict", "Warn", "Ignore"] = "Strict"
    timeout: float = Field(default=30.0, gt=0, description="read timeout of a request (s)")
    connect_timeout: float = Field(default=5.0, gt=0, description="to connect, per attempt (s)")
    unreachable_timeout: float = Field(
        default=5.0, ge=0, description="retry failed connections this long, then give up (s)"
    )
    qps: float | None = Field(default=None, gt=0, description="client-side request limit")
    burst: int | None = Field(default=None, ge=1)
    retries: int = Field(default=3, ge=0, le=20, description="retries of reads, inventory writes")
    watch: bool = Field(default=False, description="serve reads from a watch-based cache")
    crd_timeout: float = Field(default=30.0, ge=0, description="wait for a new CRD's kind")

    @field_validator("inventory_namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a namespace name (a DNS label)")
        return value

    @field_validator("field_manager")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable")
        return value


#: Options a URL query may set (everything but objects such as an injected ApiClient).
URL_OPTIONS: frozenset[str] = frozenset(
    name for name in KubernetesOptions.__pydantic_fields__ if name != "context"
)


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a ``k8s:`` URL into a credential-free display URL and its options.

    Returns ``(url, options)`` where options hold ``context`` and the query options as
    strings (validated by the registry, with keyword options, into
    :class:`KubernetesOptions`). Raises
    InvalidURLError for another scheme, a fragment, or an unknown or repeated option.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() != "k8s":
        raise InvalidURLError(url, "not a Kubernetes URL (expected k8s: or k8s://CONTEXT)")
    rest, hash_, _fragment = rest.partition("#")
    if hash_:
        raise InvalidURLError(url, "a k8s: URL has no fragment (percent-encode '#' as %23)")
    where, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    if where.startswith("//"):
        context = unquote(where[2:])
        if context:
            options["context"] = context
    elif where:
        raise InvalidURLError(url, f"expected k8s: or k8s://{where}, not k8s:{where}")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in URL_OPTIONS:
            raise InvalidURLError(
                url, f"unknown option {name!r}; expected one of {', '.join(sorted(URL_OPTIONS))}"
            )
        if name in options:
            raise InvalidURLError(url, f"option {name!r} given twice")
        options[name] = value  # pydantic parses "true"/"false"/"1"/"0" and numbers
    if query and not options.keys() - {"context"}:
        raise InvalidURLError(url, f"cannot parse the query {query!r}")
    shown = "k8s:" if "context" not in options else "k8s://" + quote(options["context"], safe=":/")
    return shown + (f"?{query}" if query else ""), options

