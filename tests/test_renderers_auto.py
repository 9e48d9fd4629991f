"""The ``auto`` renderer: each folder rendered by what it holds, Helm refused by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops import Reconciler, open_renderer
from gitops.errors import ManifestError
from gitops.manifests import parse_manifests
from gitops.model import Artifact, RenderContext
from gitops.renderers import describe_folder
from gitops.renderers.auto import AutoRenderer
from gitops.renderers.kustomize import KustomizeRenderer, kustomize_command
from gitops.sources.base import Source
from gitops.targets.memory import MemoryTarget

needs_kustomize = pytest.mark.skipif(
    not KustomizeRenderer.viable()[0],
    reason=f"no usable kustomize: {KustomizeRenderer.viable()[1]} (.ci/run installs kubectl)",
)

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_describe_folder(tmp_path: Path) -> None:
    write(tmp_path, {
        "k/kustomization.yaml": "resources: []\n",
        "k2/Kustomization": "resources: []\n",
        "j/main.jsonnet": "{}", "j/lib.libsonnet": "{}",
        "l/only.libsonnet": "{}",
        "h/Chart.yaml": "name: x\n", "h/values.yaml": "{}\n",
        "y/cm.yaml": CM.format(name="a"),
    })
    assert {name: describe_folder(tmp_path / name) for name in ("k", "k2", "j", "l", "h", "y")} == {
        "k": "kustomize", "k2": "kustomize", "j": "jsonnet", "l": "yaml", "h": "helm", "y": "yaml"}
    assert describe_folder(tmp_path / "missing") is None
    assert describe_folder(tmp_path / "y/cm.yaml") is None


def test_auto_is_a_registered_renderer() -> None:
    assert isinstance(open_renderer("auto"), AutoRenderer)
    assert isinstance(open_renderer("kustomize"), KustomizeRenderer)


@needs_kustomize
def test_a_kustomization_is_built_with_kustomize(tmp_path: Path) -> None:
    write(tmp_path, {"base/cm.yaml": CM.format(name="a"),
                     "base/kustomization.yaml": "resources: [cm.yaml]\n",
                     "prod/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\n"})
    resources = AutoRenderer().render(tmp_path / "prod", RenderContext(tree=tmp_path))
    assert [r.name for r in resources] == ["prod-a"]


def test_jsonnet_folders_are_evaluated_with_their_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"main.jsonnet": "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'j' } }",
                     "plain.yaml": CM.format(name="y")})
    assert [r.name for r in AutoRenderer().render(tmp_path, RenderContext())] == ["j", "y"]


def test_plain_folders_are_read_as_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": CM.format(name="a"), "sub/b.yaml": CM.format(name="b")})
    assert [r.name for r in AutoRenderer().render(tmp_path, RenderContext())] == ["a", "b"]


def test_a_helm_chart_is_refused_by_name(tmp_path: Path) -> None:
    write(tmp_path, {"charts/redis/Chart.yaml": "apiVersion: v2\nname: redis\nversion: 1.0.0\n",
                     "charts/redis/templates/svc.yaml": "{{ .Values.x }}\n"})
    with pytest.raises(ManifestError, match="Helm charts are not supported") as info:
        AutoRenderer().render(tmp_path / "charts/redis", RenderContext(tree=tmp_path))
    assert info.value.path == "charts/redis/Chart.yaml"


@needs_kustomize
def test_a_plain_folder_builds_subfolders_holding_a_kustomization_as_flux_does(tmp_path: Path) -> None:
    write(tmp_path, {
        "clusters/prod/apps.yaml": CM.format(name="apps"),
        "clusters/prod/flux-system/kustomization.yaml": (
            "resources: [components.yaml]\nnamespace: flux-system\n"),
        "clusters/prod/flux-system/components.yaml": CM.format(name="controller"),
        "clusters/prod/flux-system/patch.yaml": "not a manifest: read by kustomize only\n",
        "clusters/prod/zz/other.yaml": CM.format(name="zz"),
    })
    resources = AutoRenderer().render(tmp_path / "clusters/prod", RenderContext(tree=tmp_path))
    assert [(r.name, r.namespace) for r in resources] == [
        ("apps", ""), ("controller", "flux-system"), ("zz", "")]
    assert resources[1].origin == "clusters/prod/flux-system/kustomization.yaml#0"
    # without a tree the folder is the tree: its subfolders may still use each other
    write(tmp_path, {"clusters/prod/flux-system/kustomization.yaml": (
        "resources: [components.yaml, ../shared]\n"),
        "clusters/prod/shared/kustomization.yaml": "resources: [cm.yaml]\n",
        "clusters/prod/shared/cm.yaml": CM.format(name="shared")})
    names = [r.name for r in AutoRenderer().render(tmp_path / "clusters/prod", RenderContext())]
    assert names == ["apps", "controller", "shared", "shared", "zz"]


class _SubpathSource(Source):
    """A source whose artifact is a folder of a larger tree, as a Git ``#path=`` gives."""

    name = "subpath"
    url = "subpath:test"

    def __init__(self, tree: Path, path: str) -> None:
        self.tree, self.path = tree, path

    def resolve(self) -> str:
        return "main@sha1:" + "0" * 40

    def fetch(self, revision: str) -> Artifact:
        return Artifact(url="subpath:test", revision=revision, digest="sha256:" + "0" * 64,
                        path=self.tree / self.path, root=self.tree)


@needs_kustomize
def test_the_engine_syncs_an_overlay_whose_base_is_elsewhere_in_the_tree(tmp_path: Path) -> None:
    write(tmp_path, {
        "base/deploy.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
            "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
            "    spec: {containers: [{name: web, image: nginx}]}\n"),
        "base/kustomization.yaml": "resources: [deploy.yaml]\n",
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamespace: prod\n",
    })
    target = MemoryTarget()
    with Reconciler(_SubpathSource(tmp_path, "overlays/prod"), target,
                    renderer=AutoRenderer()) as rec:
        result = rec.sync()
        assert result.succeeded
        assert [str(c.key) for c in result.plan.changes] == ["Deployment.apps/prod/web"]
        assert rec.plan().in_sync
    command = kustomize_command()
    assert command is not None
    printed = subprocess.run([*command, str(tmp_path / "overlays/prod")], capture_output=True,
                             check=True).stdout
    assert [r.manifest for r in result.plan.desired] == parse_manifests(printed, "ref.yaml")


def test_variables_are_substituted_in_every_kind_of_folder(tmp_path: Path) -> None:
    write(tmp_path, {
        "plain/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: '${NS}'}\n",
        "plain/sub/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: '${NS}'}\n"
            "data: {replicas: '${N}', script: 'echo $${HOME}'}\n"),
        "plain/opted-out.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\n  annotations:\n"
            "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata: {x: '${UNSET}'}\n"),
        "jsonnet/main.jsonnet": (
            "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'j', namespace: '${NS}' } }"),
    })
    context = RenderContext(variables={"NS": "team-a", "N": "2"})
    plain = AutoRenderer().render(tmp_path / "plain", context)
    assert [(r.kind, r.name, r.namespace) for r in plain] == [
        ("Namespace", "team-a", ""), ("ConfigMap", "raw", ""), ("ConfigMap", "cm", "team-a")]
    assert plain[2].manifest["data"] == {"replicas": 2, "script": "echo ${HOME}"}
    assert plain[1].manifest["data"] == {"x": "${UNSET}"}
    (evaluated,) = AutoRenderer().render(tmp_path / "jsonnet", context)
    assert evaluated.namespace == "team-a"
    with pytest.raises(ManifestError, match="variable N is not set") as info:
        AutoRenderer().render(tmp_path / "plain", RenderContext(variables={"NS": "x"}))
    assert info.value.path == "sub/cm.yaml"
