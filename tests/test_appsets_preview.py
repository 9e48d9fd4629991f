"""``gitops appset preview -f FILE`` and generated Applications in ``gitops status -f FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gitops.apps.load import load_declarations
from gitops.appsets.generate import OWNER_ANNOTATION, declared_applications
from gitops.cli import main
from gitops.errors import InputError
from gitops.operator.commands import FileCatalog


def _write(tmp_path: Path, *, with_static: bool = True, static_name: str = "solo") -> Path:
    src = tmp_path / "src"
    for app in ("web", "db"):
        (src / app).mkdir(parents=True)
        (src / app / "cm.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {app}, namespace: default}}\n")
    docs = []
    if with_static:
        docs.append({"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
                     "metadata": {"name": static_name},
                     "spec": {"source": {"url": f"dir:{src}/web"}, "target": {"url": f"dir:{tmp_path}/out/solo"}}})
    docs.append({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "team"},
        "spec": {
            "generators": [{"matrix": {"generators": [
                {"list": {"elements": [{"app": "web"}, {"app": "db"}]}},
                {"list": {"elements": [{"env": "staging"}, {"env": "prod"}]}}]}}],
            "template": {
                "metadata": {"name": "{{app}}-{{env}}", "labels": {"env": "{{env}}"}},
                "spec": {"source": {"url": f"dir:{src}/{{{{app}}}}"},
                         "target": {"url": f"dir:{tmp_path}/out/{{{{env}}}}/{{{{app}}}}"}}}},
    })
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_preview_text_lists_every_generated_application(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    assert main(["appset", "preview", "-f", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SET", "APPLICATION", "SOURCE", "TARGET"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:2] for row in rows] == [["team/fleet", "team/web-staging"], ["team/fleet", "team/web-prod"],
                                         ["team/fleet", "team/db-staging"], ["team/fleet", "team/db-prod"]]
    assert rows[3][2:] == [f"dir:{tmp_path}/src/db", f"dir:{tmp_path}/out/prod/db"]
    assert not (tmp_path / "out").exists()  # nothing applied, no target opened


def test_preview_json_is_a_list_of_application_documents(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    assert main(["appset", "preview", "-f", str(path), "-o", "json"]) == 0
    documents = json.loads(capsys.readouterr().out)
    assert isinstance(documents, list) and len(documents) == 4
    first = documents[0]
    assert first["kind"] == "Application" and first["metadata"]["name"] == "web-staging"
    assert first["metadata"]["annotations"] == {OWNER_ANNOTATION: "team/fleet"}
    assert first["metadata"]["labels"] == {"env": "staging"}
    # the documents are Applications gitops run -f reads back as they are
    again = tmp_path / "generated.yaml"
    again.write_text(yaml.safe_dump_all(documents))
    assert [a.key for a in load_declarations(again).applications] == [
        "team/web-staging", "team/web-prod", "team/db-staging", "team/db-prod"]


def test_preview_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("{{env}}/", "{{envv}}/"))
    assert main(["appset", "preview", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ApplicationSet team/fleet: spec.template.spec.target.url: unknown parameter 'envv'" in err
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
                                     "metadata": {"name": "x"},
                                     "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}}))
    assert main(["appset", "preview", "-f", str(plain)]) == 2
    assert "no ApplicationSet in" in capsys.readouterr().err


def test_status_lists_generated_applications_under_their_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    assert main(["status", "-f", str(path), "-o", "json"]) == 1  # nothing reconciled yet
    listed = json.loads(capsys.readouterr().out)["applications"]
    names = sorted(f"{row['namespace']}/{row['name']}" for row in listed)
    assert names == ["default/solo", "team/db-prod", "team/db-staging", "team/web-prod", "team/web-staging"]
    catalog = FileCatalog([path])
    try:
        assert [a.key for a in catalog.applications()][:2] == ["default/solo", "team/web-staging"]
    finally:
        catalog.close()


def test_a_generated_name_clashing_with_a_declared_application_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, static_name="web-prod")
    text = path.read_text().replace("name: web-prod\n", "name: web-prod\n  namespace: team\n", 1)
    path.write_text(text)
    with pytest.raises(InputError, match="ApplicationSet team/fleet generates Application team/web-prod, "
                                         "which is also declared in the files"):
        declared_applications(load_declarations(path))


def test_preview_never_shows_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "hunter2-Plaintext-Pa55"
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": "s"},
        "spec": {"generators": [{"list": {"elements": [{"n": "a"}]}}], "template": {
            "metadata": {"name": "{{n}}"},
            "spec": {"source": {"url": f"git+https://bot:{secret}@git.example/r.git#path={{{{n}}}}",
                                "options": {"bearer_token": secret, "depth": 1}},
                     "target": {"url": "mock:"}}}}}))
    for output in ("text", "json"):
        assert main(["appset", "preview", "-f", str(path), "-o", output]) == 0
        shown = capsys.readouterr().out
        assert secret not in shown and "git.example/r.git#path=a" in shown
    assert json.loads(shown)[0]["spec"]["source"]["options"] == {"bearer_token": "***", "depth": 1}
    appset = load_declarations(path).of("ApplicationSet")[0]
    assert secret not in repr(appset) and secret not in repr(appset.spec)
