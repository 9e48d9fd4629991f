"""The built-in generators (list, git, clusters, matrix, merge) and the plugin lookup."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import gitops.plugins
from gitops.appsets.generate import generate, generator_class, run_generator
from gitops.appsets.generators.base import Generator, GeneratorContext, ParameterSet
from gitops.appsets.generators.clusters import SECRET_TYPE_LABEL, target_url
from gitops.appsets.generators.git import match_path
from gitops.appsets.spec import ApplicationSet
from gitops.errors import InputError
from gitops.sources.git import GitSource
from gitops.targets.kubernetes.options import parse_url
from gitops.testing.gitserver import GitDaemon, WorkRepo
from gitops.testing.kube import KubeEmulator

SECRET = "s3cr3t-token-value"


def _run(entry: dict[str, Any], context: GeneratorContext | None = None) -> list[ParameterSet]:
    ctx = (context or GeneratorContext()).for_set("ops/fleet")
    return run_generator(entry, ctx.at("spec.generators[0]"))


def _appset(generators: list[dict[str, Any]], name: str = "{{name}}") -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "ops"},
        "spec": {"generators": generators, "template": {
            "metadata": {"name": name},
            "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}}},
    })


# -- list, matrix, merge -------------------------------------------------------------------


def test_list_keeps_element_order() -> None:
    assert _run({"list": {"elements": [{"a": "1"}, {"a": "2", "b": {"c": "3"}}]}}) == \
        [{"a": "1"}, {"a": "2", "b": {"c": "3"}}]


def test_bad_config_names_the_set_and_field() -> None:
    with pytest.raises(InputError, match=r"ApplicationSet ops/fleet: spec.generators\[0\].list: "
                                         r"element: unknown field"):
        _run({"list": {"element": []}})


def test_matrix_is_the_cartesian_product_and_the_second_may_use_the_first() -> None:
    params = _run({"matrix": {"generators": [
        {"list": {"elements": [{"app": "web"}, {"app": "db"}]}},
        {"list": {"elements": [{"cluster": "eu", "id": "{{app}}-eu"}, {"cluster": "us", "id": "{{app}}-us"}]}},
    ]}})
    assert [(p["app"], p["cluster"], p["id"]) for p in params] == [
        ("web", "eu", "web-eu"), ("web", "us", "web-us"), ("db", "eu", "db-eu"), ("db", "us", "db-us")]


def test_matrix_needs_two_generators_and_agreeing_parameters() -> None:
    with pytest.raises(InputError, match="generators"):
        _run({"matrix": {"generators": [{"list": {"elements": []}}]}})
    with pytest.raises(InputError, match=r"spec.generators\[0\].matrix.generators\[1\].list: "
                                         r"elements: Input should be a valid list"):
        _run({"matrix": {"generators": [{"list": {"elements": [{"a": "1"}]}},
                                        {"list": {"elements": "x"}}]}})
    with pytest.raises(InputError, match="both generators of the matrix give parameter 'a'"):
        _run({"matrix": {"generators": [{"list": {"elements": [{"a": "1"}]}},
                                        {"list": {"elements": [{"a": "2"}]}}]}})


def test_merge_overrides_by_key_later_generators_win() -> None:
    params = _run({"merge": {"mergeKeys": ["name"], "generators": [
        {"list": {"elements": [{"name": "eu", "size": "s"}, {"name": "us", "size": "s"}]}},
        {"list": {"elements": [{"name": "us", "size": "m", "extra": "1"}, {"name": "asia", "size": "l"}]}},
        {"list": {"elements": [{"name": "us", "size": "xl"}]}},
    ]}})
    assert params == [{"name": "eu", "size": "s"}, {"name": "us", "size": "xl", "extra": "1"}]
    with pytest.raises(InputError, match=r"spec.generators\[0\].merge: generators\[1\] gives a "
                                         r"parameter set without merge key 'name'"):
        _run({"merge": {"mergeKeys": ["name"], "generators": [
            {"list": {"elements": [{"name": "eu"}]}}, {"list": {"elements": [{"size": "m"}]}}]}})


def test_top_level_generators_add_up() -> None:
    generated = generate(_appset([{"list": {"elements": [{"name": "a"}]}},
                                  {"list": {"elements": [{"name": "b"}]}}]))
    assert generated.keys == ("ops/a", "ops/b")


# -- plugins -------------------------------------------------------------------------------


class Doubling(Generator):
    """A third-party generator: ``count`` parameter sets."""

    name = "doubling"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        context.record_revision("count", str(config["count"]))
        return [{"name": f"n{i}"} for i in range(int(config["count"]))]


def test_a_registered_plugin_generates_and_records_its_revision() -> None:
    gitops.plugins.register("generator", "doubling", Doubling)
    try:
        generated = generate(_appset([{"doubling": {"count": 2}}]))
    finally:
        gitops.plugins.unregister("generator", "doubling")
    assert generated.keys == ("ops/n0", "ops/n1") and generated.revisions == {"count": "2"}


def test_gitops_plugins_lists_generators(capsys: pytest.CaptureFixture[str]) -> None:
    from gitops.cli import main

    gitops.plugins.register("generator", "doubling", Doubling)
    try:
        assert main(["plugins", "-o", "json"]) == 0
    finally:
        gitops.plugins.unregister("generator", "doubling")
    rows = json.loads(capsys.readouterr().out)["plugins"]
    assert {"kind": "generator", "name": "doubling", "status": "ok"}.items() <= next(
        r for r in rows if r["name"] == "doubling").items()


def test_unknown_generator_lists_the_installed_ones() -> None:
    with pytest.raises(InputError, match=r"spec.generators\[0\]: no generator plugin for 'nope'"):
        generate(_appset([{"nope": {}}]))
    assert generator_class("list").__name__ == "ListGenerator"


def test_builtins_are_registered_as_entry_points_in_pyproject() -> None:
    import tomllib

    from gitops.appsets.generate import BUILTIN_GENERATORS

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["gitops.generators"] == BUILTIN_GENERATORS


# -- git -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("apps/*", "apps/web", True), ("apps/*", "apps/web/sub", False), ("apps/**", "apps/a/b", False),
    ("apps/[^s]*", "apps/skip", False), ("apps/[^s]*", "apps/web", True), ("*/web", "apps/web", True),
    ("apps/we?", "apps/web", True),
])
def test_match_path_is_gos_path_match(pattern: str, path: str, matches: bool) -> None:
    assert match_path(pattern, path) is matches


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WorkRepo, Path, str]]:
    if not __import__("shutil").which("git"):
        pytest.skip("git is not installed")
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    work = WorkRepo(tmp_path / "work", home=tmp_path)
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    work.write({"apps/web/cm.yaml": cm, "apps/db/cm.yaml": cm, "apps/skip/cm.yaml": cm,
                "apps/web/nested/cm.yaml": cm, "apps/.hidden/cm.yaml": cm, "other/cm.yaml": cm})
    work.commit("first")
    work.push(served / "fleet.git")
    with GitDaemon(served).start() as daemon:
        yield work, served / "fleet.git", daemon.url("fleet.git")


def test_git_directories_with_exclude_and_path_parameters(
        repo: tuple[WorkRepo, Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    work, bare, url = repo
    fetches: list[str] = []
    real_fetch = GitSource.fetch

    def counting(self: GitSource, revision: str) -> Any:
        fetches.append(revision)
        return real_fetch(self, revision)

    monkeypatch.setattr(GitSource, "fetch", counting)
    entry = {"git": {"url": f"{url}@main", "directories": [
        {"path": "apps/*"}, {"path": "apps/skip", "exclude": True}]}}
    context = GeneratorContext()
    appset = _appset([entry], name="{{path.basename}}")
    generated = generate(appset, context=context)
    assert generated.keys == ("ops/db", "ops/web")
    web = generated.parameters[1]
    assert web["path"] == "apps/web" and web["path[0]"] == "apps" and web["path[1]"] == "web"
    assert web["path.basenameNormalized"] == "web"
    (source, revision), = generated.revisions.items()
    assert source == f"{url}@main" and revision == f"main@sha1:{work.head()}"
    # re-evaluated without a new commit: resolved again, nothing fetched nor listed again
    assert generate(appset, context=context).keys == ("ops/db", "ops/web")
    assert len(fetches) == 1
    # a new commit adds a folder
    work.write({"apps/cache/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    work.commit("add cache")
    work.push(bare)
    again = generate(appset, context=context)
    assert again.keys == ("ops/cache", "ops/db", "ops/web") and len(fetches) == 2
    assert again.revisions[source] == f"main@sha1:{work.head()}"
    context.cache.close()


def test_git_url_with_path_is_refused(repo: tuple[WorkRepo, Path, str]) -> None:
    _, _, url = repo
    with pytest.raises(InputError, match=r"spec.generators\[0\].git: url: give the repository without #path="):
        _run({"git": {"url": f"{url}#path=apps", "directories": [{"path": "*"}]}})


def test_basename_normalized_and_nested_patterns(repo: tuple[WorkRepo, Path, str]) -> None:
    work, bare, url = repo
    work.write({"apps/My_App/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    work.commit("odd name")
    work.push(bare)
    params = _run({"git": {"url": url, "directories": [{"path": "apps/*/*"}, {"path": "apps/My_App"}]}})
    assert [(p["path"], p["path.basenameNormalized"]) for p in params] == [
        ("apps/My_App", "my-app"), ("apps/web/nested", "nested")]


# -- clusters ------------------------------------------------------------------------------


def _kubeconfig(path: Path, servers: Mapping[str, str]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": next(iter(servers)),
        "clusters": [{"name": f"c-{n}", "cluster": {"server": s}} for n, s in servers.items()],
        "users": [{"name": "u", "user": {"token": SECRET}}],
        "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": "u"}} for n in servers],
    }))
    return path


def test_clusters_every_context_of_a_kubeconfig(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "kc", {"prod-eu": "https://eu:6443", "staging": "https://st:6443"})
    params = _run({"clusters": {"kubeconfig": os.fspath(path), "values": {"tier": "gold"}}})
    assert [(p["name"], p["server"], p["values.tier"]) for p in params] == [
        ("prod-eu", "https://eu:6443", "gold"), ("staging", "https://st:6443", "gold")]
    _, options = parse_url(params[0]["target"])
    assert options == {"context": "prod-eu", "kubeconfig": os.fspath(path.resolve())}
    chosen = _run({"clusters": {"kubeconfig": os.fspath(path), "selector": {"matchExpressions": [
        {"key": "name", "operator": "In", "values": ["staging"]}]}}})
    assert [p["name"] for p in chosen] == ["staging"]
    assert SECRET not in json.dumps(params)


def test_target_url_encodes_what_the_k8s_grammar_needs() -> None:
    _, options = parse_url(target_url("arn:aws:eks:x:cluster/prod?#", "/tmp/a b"))
    assert options == {"context": "arn:aws:eks:x:cluster/prod?#", "kubeconfig": "/tmp/a b"}


def _cluster_secret(name: str, server: str, labels: Mapping[str, str]) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"cluster-{name}", "namespace": "gitops-system",
                         "labels": {SECRET_TYPE_LABEL: "cluster", **labels}},
            "data": {"name": b64(name), "server": b64(server),
                     "config": b64(json.dumps({"bearerToken": SECRET,
                                               "tlsClientConfig": {"insecure": True}}))}}


def test_clusters_from_secrets_on_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            kube_emulator: KubeEmulator) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    kube_emulator.expect_ok("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gitops-system"}})
    for name, env in (("eu", "prod"), ("st", "staging")):
        kube_emulator.expect_ok("POST", "/api/v1/namespaces/gitops-system/secrets",
                                _cluster_secret(name, kube_emulator.url, {"env": env}))
    kube_emulator.expect_ok("POST", "/api/v1/namespaces/gitops-system/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated"}, "data": {}})
    assert kube_emulator.kubeconfig_path is not None
    config = {"secrets": {"kubeconfig": os.fspath(kube_emulator.kubeconfig_path)},
              "selector": {"matchLabels": {"env": "prod"}}}
    params = _run({"clusters": config})
    assert [(p["name"], p["server"], p["metadata.labels.env"]) for p in params] == [
        ("eu", kube_emulator.url, "prod")]
    assert SECRET not in json.dumps(params)
    # the target reaches the cluster with the Secret's credentials, from a private kubeconfig
    _, options = parse_url(params[0]["target"])
    written = Path(options["kubeconfig"])
    assert written.stat().st_mode & 0o777 == 0o600 and SECRET in written.read_text()
    target = gitops.plugins.open_target(params[0]["target"])
    try:
        assert target.describe()["server"] == kube_emulator.url
    finally:
        target.close()
    config.pop("selector")
    assert [p["name"] for p in _run({"clusters": config})] == ["eu", "st"]


def test_clusters_from_secret_files_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump_all([_cluster_secret("eu", "https://eu:6443", {"env": "prod"})]))
    params = _run({"clusters": {"files": [os.fspath(path)]}})
    assert [(p["name"], p["metadata.labels.env"]) for p in params] == [("eu", "prod")]
    bad = _cluster_secret("eu", "https://eu:6443", {})
    bad["data"]["config"] = base64.b64encode(json.dumps({"awsAuthConfig": {"x": SECRET}}).encode()).decode()
    path.write_text(yaml.safe_dump_all([bad]))
    with pytest.raises(InputError, match=r"Secret gitops-system/cluster-eu .*awsAuthConfig is not "
                                         r"supported") as caught:
        _run({"clusters": {"files": [os.fspath(path)]}})
    assert SECRET not in str(caught.value)
    with pytest.raises(InputError, match="give kubeconfig, secrets or files"):
        _run({"clusters": {}})


def test_git_config_repr_hides_credentials() -> None:
    from gitops.appsets.generators.git import GitConfig

    config = GitConfig.model_validate({"url": f"git+https://bot:{SECRET}@h/r.git", "directories": [{"path": "*"}],
                                       "options": {"password": SECRET}})
    assert SECRET not in repr(config) and "password" in repr(config)


def test_a_cluster_secrets_credentials_never_reach_parameters_or_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kubectl apply`` leaves the whole Secret (its ``config``) in the last-applied
    annotation: it must not become a parameter, and an error shows only what the
    template uses."""
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    secret = _cluster_secret("EU_1", "https://eu:6443", {"env": "prod"})
    applied = {"kind": "Secret", "stringData": {"config": json.dumps({"bearerToken": SECRET})}}
    secret["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied), "team": "blue"}
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump(secret))
    params = _run({"clusters": {"files": [os.fspath(path)]}})
    assert params[0]["metadata.annotations.team"] == "blue"
    assert SECRET not in json.dumps(params)
    with pytest.raises(InputError, match=r"ApplicationSet ops/fleet: generated .*DNS label") as caught:
        generate(_appset([{"clusters": {"files": [os.fspath(path)]}}], name="{{name}}"))
    assert SECRET not in str(caught.value) and "name: EU_1" in str(caught.value)
    assert "blue" not in str(caught.value), "a parameter the template does not use is not shown"


def test_a_secrets_kubeconfig_is_not_named_by_a_plain_digest_of_its_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubeconfig's path is in every generated Application: a plain digest of a
    kubeconfig holding a password lets anyone who sees it try passwords offline."""
    import hashlib

    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump(_cluster_secret("eu", "https://eu:6443", {})))
    params = _run({"clusters": {"files": [os.fspath(path)]}})
    written = Path(parse_url(params[0]["target"])[1]["kubeconfig"])
    plain = hashlib.sha256(written.read_bytes()).hexdigest()[:32]
    assert written.name != f"{plain}.kubeconfig"
    key = written.parent / ".key"
    assert key.stat().st_mode & 0o777 == 0o600 and written.parent.stat().st_mode & 0o777 == 0o700
    again = _run({"clusters": {"files": [os.fspath(path)]}})
    assert again[0]["target"] == params[0]["target"], "the same Secret, the same path"


def test_a_folder_a_source_url_would_read_as_another_is_refused(
        repo: tuple[WorkRepo, Path, str]) -> None:
    """``#path={{path}}`` with folder ``apps/a+b`` is read as ``apps/a b``: the Application
    would deploy another folder. Refused, naming the set and the folder; excluding it works."""
    work, bare, url = repo
    work.write({"apps/a+b/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    work.commit("a folder with a plus")
    work.push(bare)
    with pytest.raises(InputError, match=r"ApplicationSet ops/fleet: .*folder 'apps/a\+b'"):
        _run({"git": {"url": url, "directories": [{"path": "apps/*"}]}})
    params = _run({"git": {"url": url, "directories": [{"path": "apps/*"},
                                                        {"path": "apps/a+b", "exclude": True}]}})
    assert "apps/a+b" not in [p["path"] for p in params]
