"""The kustomize renderer against the real kustomize: same output as ``kubectl kustomize``,
confined to the fetched tree, remote bases refused, errors naming the kustomization."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import ManifestError
from gitops.manifests import Limits, parse_manifests
from gitops.model import RenderContext
from gitops.renderers._paths import Tree
from gitops.renderers.kustomize import (
    MIN_VERSION,
    KustomizeRenderer,
    kustomize_command,
    kustomize_version,
)
from gitops.renderers.kustomize_graph import walk_kustomization


def _skip_reason() -> str:
    command = kustomize_command()
    if command is None:
        return "neither kustomize nor kubectl is on PATH (.ci/run installs kubectl when it can)"
    version = kustomize_version(tuple(command))
    if version is None or version < MIN_VERSION:
        return f"{' '.join(command)} runs kustomize {version}; these tests need v4 or later"
    return ""


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "-")


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def reference(folder: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize DIR`` (or ``kustomize build DIR``) prints, parsed the same way."""
    command = kustomize_command()
    assert command is not None
    done = subprocess.run([*command, str(folder)], capture_output=True, check=True)
    return parse_manifests(done.stdout, "reference.yaml")


def render(root: Path, tree: Path | None = None, **options: Any) -> list[Any]:
    return KustomizeRenderer(**options).render(root, RenderContext(tree=tree))


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom: [{configMapRef: {name: settings}}, {secretRef: {name: creds}}]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def base_and_overlay(repo: Path) -> None:
    write(repo, {
        "base/deployment.yaml": DEPLOYMENT,
        "base/service.yaml": SERVICE,
        "base/settings.env": "LOG_LEVEL=info\nFEATURE=on\n",
        "base/kustomization.yaml": (
            "resources: [deployment.yaml, service.yaml]\n"
            "configMapGenerator:\n- name: settings\n  envs: [settings.env]\n"
            "secretGenerator:\n- name: creds\n  literals: [password=s3cr3t-value]\n"
        ),
        "overlays/prod/kustomization.yaml": (
            "resources: [../../base]\n"
            "namespace: prod\nnamePrefix: prod-\n"
            "labels:\n- pairs: {env: prod}\n  includeSelectors: true\n"
            "images:\n- name: nginx\n  newTag: '1.26'\n"
            "patches:\n- path: replicas.yaml\n"
            "- target: {kind: Service}\n  patch: |\n"
            "    - op: add\n      path: /metadata/annotations\n      value: {team: web}\n"
        ),
        "overlays/prod/replicas.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"
        ),
    })


# ------------------------------------------------------------- equal to kubectl kustomize


def test_overlay_using_a_base_elsewhere_in_the_tree_equals_kubectl_kustomize(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)
    overlay = tmp_path / "overlays/prod"
    resources = render(overlay, tmp_path)
    assert [r.manifest for r in resources] == reference(overlay)
    by_kind = {r.kind: r for r in resources}
    deployment = by_kind["Deployment"].manifest
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    # generator names carry the content hash, and the Deployment refers to the hashed names
    config_map = by_kind["ConfigMap"]
    assert config_map.name.startswith("prod-settings-") and len(config_map.name) > 14
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from[0]["configMapRef"]["name"] == config_map.name
    assert all(r.namespace == "prod" for r in resources)
    assert by_kind["Service"].manifest["metadata"]["annotations"] == {"team": "web"}
    # errors and origins name the kustomization file, relative to the tree
    assert {r.origin.split("#")[0] for r in resources} == {"overlays/prod/kustomization.yaml"}


def test_components_equal_kubectl_kustomize(tmp_path: Path) -> None:
    write(tmp_path, {
        "app/deployment.yaml": DEPLOYMENT.replace("        envFrom: [{configMapRef: {name: settings}}, {secretRef: {name: creds}}]\n", ""),
        "app/kustomization.yaml": "resources: [deployment.yaml]\ncomponents: [../components/monitoring]\n",
        "components/monitoring/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            "resources: [monitor.yaml]\n"
            "patches:\n- target: {kind: Deployment}\n  patch: |\n"
            "    - op: add\n      path: /metadata/labels\n      value: {monitored: 'true'}\n"
        ),
        "components/monitoring/monitor.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: monitor}\ndata: {scrape: '30s'}\n"
        ),
    })
    resources = render(tmp_path / "app", tmp_path)
    assert [r.manifest for r in resources] == reference(tmp_path / "app")
    assert {r.name for r in resources} == {"web", "monitor"}
    deployment = next(r for r in resources if r.kind == "Deployment")
    assert deployment.labels == {"monitored": "true"}


def test_generators_with_hashes_equal_kubectl_kustomize(tmp_path: Path) -> None:
    write(tmp_path, {
        "kustomization.yaml": (
            "configMapGenerator:\n"
            "- name: files\n  files: [app.properties, renamed.conf=other.conf]\n"
            "- name: literal\n  literals: [a=1, b=two]\n"
            "- name: plain\n  literals: [x=y]\n  options: {disableNameSuffixHash: true}\n"
            "secretGenerator:\n- name: tls\n  files: [key.pem]\n  type: Opaque\n"
            "generatorOptions:\n  labels: {generated: 'yes'}\n"
        ),
        "app.properties": "color=blue\n",
        "other.conf": "[section]\nkey = value\n",
        "key.pem": "not really a key\n",
    })
    resources = render(tmp_path)
    assert [r.manifest for r in resources] == reference(tmp_path)
    names = {r.name for r in resources}
    assert "plain" in names
    assert any(n.startswith("files-") for n in names) and any(n.startswith("tls-") for n in names)
    assert all(r.labels.get("generated") == "yes" for r in resources)


def test_namespace_transformer_leaves_cluster_scoped_kinds_alone(tmp_path: Path) -> None:
    write(tmp_path, {
        "kustomization.yaml": "namespace: team\nresources: [all.yaml]\n",
        "all.yaml": (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n"
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n"
            "rules: []\n---\n"
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
            "metadata: {name: reader}\nroleRef: {apiGroup: rbac.authorization.k8s.io, "
            "kind: ClusterRole, name: reader}\nsubjects: [{kind: ServiceAccount, name: bot, "
            "namespace: elsewhere}]\n---\n"
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bot}\n"
        ),
    })
    resources = render(tmp_path)
    assert [r.manifest for r in resources] == reference(tmp_path)
    scope = {r.kind: r.namespace for r in resources}
    assert scope["ClusterRole"] == "" and scope["Namespace"] == ""
    assert scope["ServiceAccount"] == "team"


# ------------------------------------------------------------------- the tree's borders


def test_base_outside_the_tree_is_refused_before_kustomize_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_and_overlay(tmp_path / "elsewhere")
    write(tmp_path / "repo", {"overlay/kustomization.yaml": "resources: [../../elsewhere/base]\n"})
    ran = _count_runs(monkeypatch)
    with pytest.raises(ManifestError) as info:
        render(tmp_path / "repo/overlay", tmp_path / "repo")
    assert info.value.path == "overlay/kustomization.yaml"
    assert "outside the source tree" in str(info.value)
    assert ran == []
    # kustomize itself would have read it: its load restrictor lets base folders through
    assert reference(tmp_path / "repo/overlay")


def test_no_tree_means_the_root_itself(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)
    with pytest.raises(ManifestError, match="outside the source tree"):
        render(tmp_path / "overlays/prod")


def test_base_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    base_and_overlay(tmp_path / "elsewhere")
    write(tmp_path / "repo", {"overlay/kustomization.yaml": "resources: [base]\n"})
    (tmp_path / "repo/overlay/base").symlink_to(tmp_path / "elsewhere/base")
    with pytest.raises(ManifestError) as info:
        render(tmp_path / "repo/overlay", tmp_path / "repo")
    assert info.value.path == "overlay/kustomization.yaml" and "'base'" in str(info.value)


def test_files_through_symlinks_outside_the_tree_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere", {"secret.env": "TOKEN=abc\n", "patch.yaml": SERVICE})
    cases = [  # (kustomization, link in the tree, file outside it)
        ("resources: [service.yaml]\n", "service.yaml", "patch.yaml"),
        ("resources: [svc.yaml]\npatches: [{path: patch.yaml}]\n", "patch.yaml", "patch.yaml"),
        ("secretGenerator:\n- name: s\n  envs: [secret.env]\n", "secret.env", "secret.env"),
    ]
    for number, (kustomization, link, target) in enumerate(cases):
        repo = tmp_path / f"repo{number}"
        write(repo, {"kustomization.yaml": kustomization, "svc.yaml": SERVICE})
        (repo / link).symlink_to(tmp_path / "elsewhere" / target)
        with pytest.raises(ManifestError, match="outside the source tree") as info:
            render(repo)
        assert info.value.path == "kustomization.yaml"


def test_symlinks_inside_the_tree_are_fine(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)
    (tmp_path / "overlays/link").symlink_to(tmp_path / "overlays/prod")
    resources = render(tmp_path / "overlays/link", tmp_path)
    assert [r.manifest for r in resources] == reference(tmp_path / "overlays/prod")


@pytest.mark.parametrize("entry", [
    "github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v5.0.0",
    "https://github.com/example/config//base?ref=main",
    "git@github.com:example/config.git//base",
    "git::https://gitlab.example.com/team/config.git//base",
    "https://raw.githubusercontent.com/example/config/main/deploy.yaml",
    "config.example.com/team/base",
])
def test_remote_bases_are_refused(tmp_path: Path, entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"app/kustomization.yaml": f"resources:\n- {entry}\n"})
    ran = _count_runs(monkeypatch)
    with pytest.raises(ManifestError) as info:
        render(tmp_path / "app", tmp_path)
    assert info.value.path == "app/kustomization.yaml"
    assert "remote bases are not allowed" in str(info.value)
    assert ran == []


def test_remote_bases_pass_the_check_when_allowed_but_never_credentials(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": (
        "resources:\n- https://user:hunter2@git.example.com/org/repo//base?ref=v1\n"
        "- github.com/org/repo//base\n")})
    graph = walk_kustomization(Tree(tmp_path, None), allow_remote=True)
    assert graph.remote == ["https://user:***@git.example.com/org/repo//base?ref=v1",
                            "github.com/org/repo//base"]
    with pytest.raises(ManifestError) as info:
        render(tmp_path)
    assert "hunter2" not in str(info.value) and "remote" in str(info.value)


def test_file_urls_are_refused_even_when_remote_bases_are_allowed(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: ['file:///etc/kubernetes']\n"})
    with pytest.raises(ManifestError, match="outside the source tree"):
        render(tmp_path, allow_remote=True)


def test_helm_charts_in_a_kustomization_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "helmCharts:\n- name: redis\n  repo: https://charts.example.com\n"})
    with pytest.raises(ManifestError, match="Helm charts are not supported") as info:
        render(tmp_path)
    assert info.value.path == "kustomization.yaml"


def test_missing_and_invalid_references_name_the_kustomization(tmp_path: Path) -> None:
    write(tmp_path, {
        "a/kustomization.yaml": "resources: [../b]\n",
        "b/kustomization.yaml": "resources: [nope.yaml]\n",
        "c/kustomization.yaml": "resources: [../d]\n",
        "d/readme.md": "no kustomization here\n",
        "e/kustomization.yaml": "resources: [{not: a string}]\n",
        "f/kustomization.yaml": "resources: [x.yaml\n",
        "g/kustomization.yaml": "", "g/kustomization.yml": "",
    })
    expected = {
        "a": ("b/kustomization.yaml", "does not exist"),
        "c": ("c/kustomization.yaml", "has no kustomization file"),
        "e": ("e/kustomization.yaml", "must be a list of strings"),
        "f": ("f/kustomization.yaml", "invalid YAML"),
        "g": ("g/kustomization.yaml", "several kustomization files"),
    }
    for folder, (path, message) in expected.items():
        with pytest.raises(ManifestError, match=message) as info:
            render(tmp_path / folder, tmp_path)
        assert info.value.path == path


# ------------------------------------------------------------------------ kustomize fails


def test_build_errors_name_the_kustomization_and_never_quote_secrets(tmp_path: Path) -> None:
    write(tmp_path, {
        "gen/kustomization.yaml": "secretGenerator:\n- name: s\n  literals: [novalue-s3cr3t]\n",
        "patch/kustomization.yaml": (
            "resources: [secret.yaml]\npatches:\n- patch: |\n"
            "    apiVersion: v1\n    kind: Secret\n    metadata: {name: s}\n"
            "    stringData: [topsecret-in-patch\n"
        ),
        "patch/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n",
        "env/kustomization.yaml": "secretGenerator:\n- name: s\n  envs: [s.env]\n",
    })
    (tmp_path / "env/s.env").write_bytes(b"GOOD=1\nline-s3cr3t\xff-from-env=more-s3cr3t\n")
    for folder in ("gen", "patch", "env"):
        with pytest.raises(ManifestError) as info:
            render(tmp_path / folder, tmp_path)
        text = str(info.value)
        assert info.value.path == f"{folder}/kustomization.yaml"
        assert text.startswith(f"{folder}/kustomization.yaml: kustomize build failed: ")
        for secret in ("s3cr3t", "topsecret", str(tmp_path)):
            assert secret not in text, text
        assert "\n" not in text and len(text) < 400


def test_output_goes_through_manifest_validation(tmp_path: Path) -> None:
    write(tmp_path, {
        "kustomization.yaml": "resources: [cm.yaml]\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Not_A_Label}\n",
    })
    with pytest.raises(ManifestError, match="not a valid DNS label") as info:
        render(tmp_path)
    assert info.value.path == "kustomization.yaml" and info.value.document == 0


def test_a_build_past_its_timeout_is_an_error(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)
    with pytest.raises(ManifestError, match=r"timed out after 0\.001 s") as info:
        render(tmp_path / "overlays/prod", tmp_path, timeout=0.001)
    assert info.value.path == "overlays/prod/kustomization.yaml"


def test_context_options_override_the_constructor(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)
    renderer = KustomizeRenderer(timeout=0.001)
    context = RenderContext(tree=tmp_path, options={"kustomize": {"timeout": 120}})
    assert renderer.render(tmp_path / "overlays/prod", context)
    with pytest.raises(Exception, match="option tymeout"):
        renderer.render(tmp_path / "overlays/prod",
                        RenderContext(tree=tmp_path, options={"kustomize": {"tymeout": 1}}))


# ------------------------------------------------------------------- purity and the cache


def _count_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The kustomize builds started from now on (``subprocess.run`` is left alone)."""
    runs: list[list[str]] = []
    real = subprocess.Popen

    def counting(args: list[str], **kwargs: Any) -> Any:
        runs.append(list(args))
        return real(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    return runs


def test_unchanged_tree_is_not_built_again_and_any_read_file_invalidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_and_overlay(tmp_path)
    write(tmp_path, {"unrelated/notes.yaml": "a: b\n"})
    renderer = KustomizeRenderer()
    overlay, context = tmp_path / "overlays/prod", RenderContext(tree=tmp_path)
    first = renderer.render(overlay, context)
    runs = _count_runs(monkeypatch)
    assert renderer.render(overlay, context) == first
    (tmp_path / "unrelated/notes.yaml").write_text("a: c\n")  # not readable by the build
    assert renderer.render(overlay, context) == first
    assert runs == []
    (tmp_path / "base/settings.env").write_text("LOG_LEVEL=debug\n")  # read by the base
    changed = renderer.render(overlay, context)
    assert len(runs) == 1 and changed != first
    assert [r.manifest for r in changed] == reference(overlay)


def test_the_artifact_is_never_written(tmp_path: Path) -> None:
    base_and_overlay(tmp_path)

    def snapshot() -> dict[str, tuple[int, int]]:
        found = {}
        for base, folders, files in os.walk(tmp_path):
            for name in folders + files:
                info = os.stat(os.path.join(base, name))
                found[os.path.relpath(os.path.join(base, name), tmp_path)] = (
                    info.st_mtime_ns, info.st_size)
        return found

    before = snapshot()
    render(tmp_path / "overlays/prod", tmp_path)
    assert snapshot() == before


def test_viable_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ok, why = KustomizeRenderer.viable()
    assert not ok and "neither kustomize nor kubectl" in why


def test_variables_are_substituted_before_validation_with_flux_types(tmp_path: Path) -> None:
    write(tmp_path, {
        "kustomization.yaml": "resources: [deploy.yaml]\nnamespace: ${NS:=apps}\n",
        "deploy.yaml": DEPLOYMENT.replace("replicas: 1", 'replicas: "${REPLICAS}"').replace(
            "  name: web\n", "  name: web\n  annotations: {id: '${quote}${ID}${quote}'}\n", 1),
    })
    renderer = KustomizeRenderer()
    variables = {"REPLICAS": "3", "quote": '"', "ID": "42"}
    (out,) = renderer.render(tmp_path, RenderContext(variables=variables))
    # kustomize prints the quoted "${REPLICAS}" plain, so Flux's re-read makes it a number
    assert "replicas: ${REPLICAS}\n" in subprocess.run(
        [*(kustomize_command() or []), str(tmp_path)], capture_output=True, check=True
    ).stdout.decode()
    assert out.manifest["spec"]["replicas"] == 3
    assert out.manifest["metadata"]["annotations"] == {"id": "42"}
    assert out.namespace == "apps"
    # the build is cached; variables apply per render, and strictly
    with pytest.raises(ManifestError, match="variable REPLICAS is not set") as info:
        renderer.render(tmp_path, RenderContext(variables={"quote": "'", "ID": "1"}))
    assert info.value.path == "kustomization.yaml"
    with pytest.raises(ManifestError, match="namespace"):  # no variables: no substitution
        renderer.render(tmp_path, RenderContext())


def test_a_timeout_kills_the_tools_children_too(tmp_path: Path) -> None:
    # kubectl may be a dispatcher running the real binary as a child holding the pipes
    import time

    from gitops.renderers.kustomize import _run

    started = time.monotonic()
    with pytest.raises(ManifestError, match="timed out"):
        _run(["sh", "-c", "sleep 30 & sleep 30"], str(tmp_path), 0.3, "kustomization.yaml",
             1 << 20)
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(ManifestError, match="exceeds 100000 bytes"):  # never-ending output
        _run(["sh", "-c", "yes"], str(tmp_path), 30, "kustomization.yaml", 100_000)
    assert time.monotonic() - started < 10


def test_output_over_the_limit_stops_the_build_without_reading_it(tmp_path: Path) -> None:
    """A hostile overlay can multiply its objects: the build is cut at the byte limit."""
    write(tmp_path, {"kustomization.yaml": "configMapGenerator:\n" + "".join(
        f"- name: cm{i}\n  literals: [k={'v' * 200}]\n" for i in range(50))})
    small = Limits(max_total_bytes=2_000)
    with pytest.raises(ManifestError, match=r"kustomization\.yaml.*exceeds 2000 bytes"):
        KustomizeRenderer(limits=small).render(tmp_path, RenderContext(tree=tmp_path))
    assert len(KustomizeRenderer().render(tmp_path, RenderContext(tree=tmp_path))) == 50
