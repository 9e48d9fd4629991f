"""The ``clusters`` generator: one parameter set per cluster, from a kubeconfig or cluster Secrets.

Where clusters come from (one or more of)::

    - clusters:
        kubeconfig: ~/.kube/fleet.yaml        # every context of this kubeconfig
        secrets:                               # cluster Secrets read from a cluster
          kubeconfig: ~/.kube/config           #   (default: $KUBECONFIG, in a pod its account)
          context: management                  #   (default: the current one)
          namespace: gitops-system             #   (default: every namespace)
        files: [clusters.yaml]                 # cluster Secrets written in YAML files
        selector:                              # optional: which clusters
          matchLabels: {env: prod}
          matchExpressions: [{key: name, operator: In, values: [eu-1, us-1]}]
        values: {tier: gold}                   # extra parameters values.<key>

A cluster Secret is Argo CD's, labelled ``gitops.dev/secret-type: cluster`` instead of
``argocd.argoproj.io/secret-type``: data ``name``, ``server`` and ``config`` (JSON:
``bearerToken``, or ``username``/``password``, ``tlsClientConfig`` with ``caData``,
``certData``, ``keyData``, ``insecure``, ``serverName``, or ``execProviderConfig``).

The selector is a Kubernetes label selector over the cluster's labels (a Secret's
``metadata.labels``; a kubeconfig context has none) and, unless a label of that name
exists, ``name``: the cluster's name, so contexts are selected by name.

Parameters: ``name``, ``nameNormalized``, ``server``, ``metadata.labels.<key>``,
``metadata.annotations.<key>``, ``values.<key>`` and ``target``: the ``k8s:`` target URL
of the cluster (``k8s://CONTEXT?kubeconfig=PATH``). For a Secret, ``PATH`` is a
kubeconfig (mode 0600, in a private folder of the gitops cache) written from the
Secret's ``config``, so no credential ever appears in a generated Application; the
template writes ``target: {url: "{{target}}"}``. Secret values never appear in errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import Field

from gitops.appsets.generators.base import ConfigModel, Generator, GeneratorContext, ParameterSet
from gitops.appsets.spec import LabelSelectorRequirement
from gitops.cache import cache_root, sweep_unused
from gitops.errors import GitopsError
from gitops.masking import LAST_APPLIED_ANNOTATION

__all__ = ["KUBECONFIG_RETENTION", "SECRET_TYPE_LABEL", "Cluster", "ClustersGenerator",
           "target_url"]

#: the label (value ``cluster``) that makes a Secret a cluster registration
SECRET_TYPE_LABEL = "gitops.dev/secret-type"

_NOT_NORMAL = re.compile(r"[^a-z0-9.-]+")


class LabelSelector(ConfigModel):
    """A Kubernetes label selector: every ``matchLabels`` pair and ``matchExpressions`` entry."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list,
                                                              alias="matchExpressions")

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match_labels.items())
                and all(r.matches(labels) for r in self.match_expressions))


class SecretsFrom(ConfigModel):
    """Where cluster Secrets are listed: a cluster (``kubeconfig``, ``context``), a namespace."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


class ClustersConfig(ConfigModel):
    """``kubeconfig``, ``secrets``, ``files``, ``selector`` and ``values``."""

    kubeconfig: str | None = None
    secrets: SecretsFrom | None = None
    files: list[str] = Field(default_factory=list)
    selector: LabelSelector = Field(default_factory=LabelSelector)
    values: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    """One cluster: its name, API server, labels and the ``k8s:`` URL that reaches it."""

    name: str
    server: str
    target: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def parameters(self, values: Mapping[str, str]) -> ParameterSet:
        params: ParameterSet = {
            "name": self.name,
            "nameNormalized": _NOT_NORMAL.sub("-", self.name.lower()).strip("-."),
            "server": self.server,
            "target": self.target,
        }
        params.update({f"metadata.labels.{k}": v for k, v in self.labels.items()})
        params.update({f"metadata.annotations.{k}": v for k, v in self.annotations.items()})
        params.update({f"values.{k}": v for k, v in values.items()})
        return params


def target_url(context: str, kubeconfig: str | os.PathLike[str]) -> str:
    """``k8s://CONTEXT?kubeconfig=PATH``, the context and path percent-encoded as needed."""
    return (f"k8s://{quote(context, safe=':/@')}"
            f"?kubeconfig={quote(os.fspath(kubeconfig), safe='/')}")


class ClustersGenerator(Generator):
    """Argo CD's Cluster generator, plus every context of a kubeconfig."""

    name = "clusters"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        model = context.validate(ClustersConfig, config)
        if model.kubeconfig is None and model.secrets is None and not model.files:
            raise context.error("give kubeconfig, secrets or files: where the clusters are")
        clusters: list[Cluster] = []
        if model.kubeconfig is not None:
            clusters.extend(_contexts(Path(model.kubeconfig).expanduser(), context))
        secrets: list[tuple[str, Mapping[str, Any]]] = []
        if model.secrets is not None:
            secrets.extend(_listed_secrets(model.secrets, context))
        for path in model.files:
            secrets.extend(_file_secrets(Path(path).expanduser(), context))
        clusters.extend(_secret_cluster(where, secret, context) for where, secret in secrets)
        seen: dict[str, Cluster] = {}
        for cluster in clusters:
            if cluster.name in seen:
                raise context.error(f"cluster {cluster.name!r} is registered twice")
            seen[cluster.name] = cluster
        chosen = [c for c in clusters
                  if model.selector.matches({"name": c.name, **c.labels})]
        return [c.parameters(model.values) for c in sorted(chosen, key=lambda c: c.name)]


# -- kubeconfig contexts -------------------------------------------------------------------


def _read_yaml_documents(path: Path, context: GeneratorContext) -> list[Any]:
    try:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise context.error(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise context.error(f"{path} is not valid YAML") from None


def _contexts(path: Path, context: GeneratorContext) -> Iterator[Cluster]:
    docs = _read_yaml_documents(path, context)
    config = docs[0] if len(docs) == 1 else None
    if not isinstance(config, Mapping):
        raise context.error(f"kubeconfig {path} is not one kubeconfig document")
    servers = {str(c.get("name")): str((c.get("cluster") or {}).get("server") or "")
               for c in config.get("clusters") or () if isinstance(c, Mapping)}
    absolute = path.resolve()
    for entry in config.get("contexts") or ():
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise context.error(f"kubeconfig {path}: a context without a name")
        name = str(entry["name"])
        cluster = str((entry.get("context") or {}).get("cluster") or "")
        yield Cluster(name=name, server=servers.get(cluster, ""), target=target_url(name, absolute))


# -- cluster Secrets -----------------------------------------------------------------------


def _listed_secrets(where: SecretsFrom, context: GeneratorContext
                    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Cluster Secrets of the cluster ``where`` names (a list request, label-selected)."""
    from gitops.targets.kubernetes.http import KubeClient, load_api_client  # the client on use

    url = f"k8s://{where.context}" if where.context else "k8s:"
    path = (f"/api/v1/namespaces/{quote(where.namespace, safe='')}/secrets" if where.namespace
            else "/api/v1/secrets")
    try:
        loaded = load_api_client(url, where.kubeconfig, where.context)
        client = KubeClient(loaded.api_client, url=url, timeout=10.0)
        try:
            body = client.request("GET", path, query=[("labelSelector", f"{SECRET_TYPE_LABEL}=cluster")],
                                  verb="list")
        finally:
            client.close()
    except GitopsError as exc:
        raise context.error(f"secrets: cannot list cluster Secrets: {exc}") from None
    for item in body.get("items") or ():
        if isinstance(item, Mapping):
            meta = item.get("metadata") or {}
            yield f"Secret {meta.get('namespace')}/{meta.get('name')}", item


def _file_secrets(path: Path, context: GeneratorContext) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Cluster Secrets written in a YAML file (other documents are an error)."""
    for index, doc in enumerate(_read_yaml_documents(path, context)):
        if doc is None:
            continue
        meta = doc.get("metadata") if isinstance(doc, Mapping) else None
        labels = (meta or {}).get("labels") or {}
        if (not isinstance(doc, Mapping) or doc.get("kind") != "Secret" or not isinstance(meta, Mapping)
                or labels.get(SECRET_TYPE_LABEL) != "cluster"):
            raise context.error(f"{path} document {index}: not a Secret labelled "
                                f"{SECRET_TYPE_LABEL}: cluster")
        yield f"Secret {meta.get('namespace', 'default')}/{meta.get('name')} ({path})", doc


def _secret_data(where: str, secret: Mapping[str, Any], context: GeneratorContext) -> dict[str, str]:
    """``data`` (base64) and ``stringData`` of a Secret, decoded; values never shown."""
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value or ""), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise context.error(f"{where}: data.{key} is not base64 of UTF-8 text") from None
    data.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def _secret_cluster(where: str, secret: Mapping[str, Any], context: GeneratorContext) -> Cluster:
    data = _secret_data(where, secret, context)
    name, server = data.get("name", ""), data.get("server", "")
    if not name or not server:
        raise context.error(f"{where}: a cluster Secret needs data name and server")
    try:
        config = json.loads(data.get("config") or "{}")
    except json.JSONDecodeError:
        raise context.error(f"{where}: data.config is not JSON") from None
    if not isinstance(config, Mapping):
        raise context.error(f"{where}: data.config must be a JSON object")
    kubeconfig = _write_kubeconfig(_kubeconfig(where, name, server, config, context))
    meta = secret.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items() if k != SECRET_TYPE_LABEL}
    # kubectl's last-applied annotation is the Secret itself, credentials included
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()
                   if k != LAST_APPLIED_ANNOTATION}
    return Cluster(name=name, server=server, target=target_url(name, kubeconfig),
                   labels=labels, annotations=annotations)


def _kubeconfig(where: str, name: str, server: str, config: Mapping[str, Any],
                context: GeneratorContext) -> dict[str, Any]:
    """A one-context kubeconfig (context ``name``) from Argo CD's cluster ``config``."""
    known = {"bearerToken", "username", "password", "tlsClientConfig", "execProviderConfig"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise context.error(f"{where}: data.config.{unknown[0]} is not supported "
                            f"(supported: {', '.join(sorted(known))})")
    tls = config.get("tlsClientConfig") or {}
    cluster: dict[str, Any] = {"server": server}
    if tls.get("insecure"):
        cluster["insecure-skip-tls-verify"] = True
    if tls.get("caData"):
        cluster["certificate-authority-data"] = str(tls["caData"])
    if tls.get("serverName"):
        cluster["tls-server-name"] = str(tls["serverName"])
    user: dict[str, Any] = {}
    if config.get("bearerToken"):
        user["token"] = str(config["bearerToken"])
    if config.get("username"):
        user["username"] = str(config["username"])
        user["password"] = str(config.get("password") or "")
    if tls.get("certData"):
        user["client-certificate-data"] = str(tls["certData"])
    if tls.get("keyData"):
        user["client-key-data"] = str(tls["keyData"])
    provider = config.get("execProviderConfig")
    if isinstance(provider, Mapping):
        user["exec"] = {
            "apiVersion": str(provider.get("apiVersion") or "client.authentication.k8s.io/v1beta1"),
            "command": str(provider.get("command") or ""),
            "args": [str(a) for a in provider.get("args") or ()],
            "env": [{"name": str(k), "value": str(v)} for k, v in (provider.get("env") or {}).items()],
            "interactiveMode": "Never",
        }
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def _naming_key(folder: Path) -> bytes:
    """The random key (made once, mode 0600) that names the kubeconfigs of ``folder``."""
    path = folder / ".key"
    if not path.exists():  # written whole, then linked in: a reader never sees half a key
        temporary = folder / f".key.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: theirs
        finally:
            temporary.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise GitopsError(f"{path} is not a naming key: remove it")
    return key


def _write_kubeconfig(config: Mapping[str, Any]) -> Path:
    """Write ``config`` once, mode 0600 in a 0700 folder; its path.

    Named by a keyed digest of its content: the name changes when the credentials do,
    and the path (shown in every generated Application's target URL) cannot be used to
    guess them (a plain digest of a kubeconfig holding a password can be).
    """
    text = yaml.safe_dump(dict(config), sort_keys=True)
    folder = cache_root() / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    name = hmac.new(_naming_key(folder), text.encode(), hashlib.sha256).hexdigest()[:32]
    path = folder / f"{name}.kubeconfig"
    _sweep_kubeconfigs(folder)  # first: it cannot take the file returned here
    try:
        os.utime(path)  # in use: kept by the sweep
    except FileNotFoundError:  # new, or another process's sweep took it just now
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    return path


#: seconds after which a kubeconfig no evaluation wrote or used is deleted: a Secret's
#: credentials rotated (the new ones get a new file) or a cluster gone. Longer than any
#: sane set interval, since a generated Application reads it until the set's next look.
KUBECONFIG_RETENTION = 7 * 86400.0
_SWEEP_EVERY = 3600.0  # seconds between two sweeps (``.swept`` in the folder)


def _sweep_kubeconfigs(folder: Path) -> None:
    """Delete the kubeconfigs (and a dead writer's temporary files) not used for
    :data:`KUBECONFIG_RETENTION`, at most once an hour: stale credentials do not pile
    up on disk for ever."""
    sweep_unused(folder, KUBECONFIG_RETENTION, marker=folder / ".swept", every=_SWEEP_EVERY)
