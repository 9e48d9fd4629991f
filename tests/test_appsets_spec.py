"""The ApplicationSet document (gitops.appsets.spec): validation, defaults, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gitops.apps.load import load_declarations
from gitops.appsets.spec import ApplicationSet, RollingSyncStep
from gitops.errors import ManifestError

SET: dict[str, Any] = {
    "apiVersion": "gitops.dev/v1alpha1",
    "kind": "ApplicationSet",
    "metadata": {"name": "fleet", "namespace": "ops"},
    "spec": {
        "generators": [{"list": {"elements": [{"cluster": "a"}]}}],
        "template": {
            "metadata": {"name": "web-{{cluster}}", "labels": {"env": "{{cluster}}"}},
            "spec": {"source": {"url": "dir:/tmp/{{cluster}}"}, "target": {"url": "mock:"}},
        },
    },
}


def _with(**spec: Any) -> dict[str, Any]:
    return {**SET, "spec": {**SET["spec"], **spec}}


def test_defaults_and_key() -> None:
    appset = ApplicationSet.model_validate(SET)
    assert appset.key == "ops/fleet"
    assert appset.spec.interval == 60
    assert appset.spec.sync_policy.applications_sync == "sync"
    assert appset.spec.strategy is None
    assert appset.to_dict()["spec"]["interval"] == "1m0s"
    assert "generators=['list']" in repr(appset)


def test_rolling_sync_and_policies() -> None:
    appset = ApplicationSet.model_validate(_with(
        syncPolicy={"applicationsSync": "create-only"},
        strategy={"type": "RollingSync", "rollingSync": {"steps": [
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]},
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
             "maxUpdate": "25%"},
        ]}}))
    assert appset.spec.strategy is not None and appset.spec.strategy.rolling
    first, second = appset.spec.strategy.rolling_sync.steps  # type: ignore[union-attr]
    assert first.selects({"env": "staging"}) and not first.selects({"env": "prod"})
    assert second.limit(10) == 2 and second.limit(1) == 1 and first.limit(7) == 7


@pytest.mark.parametrize(("max_update", "total", "expected"), [(0, 5, 0), (3, 2, 2), ("0%", 5, 0), ("100%", 3, 3)])
def test_max_update(max_update: int | str, total: int, expected: int) -> None:
    step = RollingSyncStep.model_validate({"matchExpressions": [], "maxUpdate": max_update})
    assert step.limit(total) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ({"generators": []}, "generators"),
    ({"generators": [{"list": {}, "git": {}}]}, "exactly one key"),
    ({"syncPolicy": {"applicationsSync": "delete-all"}}, "applicationsSync"),
    ({"strategy": {"type": "RollingSync"}}, "rollingSync.steps"),
    ({"strategy": {"rollingSync": {"steps": [{"matchExpressions": [
        {"key": "env", "operator": "In"}]}]}}}, "needs values"),
    ({"strategy": {"rollingSync": {"steps": [{"matchExpressions": [], "maxUpdate": "150%"}]}}}, "maxUpdate"),
    ({"template": {"metadata": {"name": "x"}, "spec": {"source": {"url": "dir:x"}}}}, "target"),
    ({"interval": "soon"}, "interval"),
    ({"extra": 1}, "extra"),
])
def test_invalid(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApplicationSet.model_validate(_with(**spec))


def test_loaded_from_files_beside_applications(tmp_path: Path) -> None:
    app = {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application", "metadata": {"name": "solo"},
           "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}}
    path = tmp_path / "apps.yaml"
    path.write_text(yaml.safe_dump_all([app, SET]))
    declared = load_declarations(path)
    assert [a.key for a in declared.applications] == ["default/solo"]
    assert [s.key for s in declared.of("ApplicationSet")] == ["ops/fleet"]
    path.write_text(yaml.safe_dump_all([SET, SET]))
    with pytest.raises(ManifestError, match="ApplicationSet ops/fleet is already declared"):
        load_declarations(path)


def test_from_object_ignores_status_and_server_metadata() -> None:
    from gitops.errors import InputError

    obj = {**SET, "metadata": {**SET["metadata"], "uid": "u", "resourceVersion": "7", "generation": 2},
           "status": {"conditions": []}}
    assert ApplicationSet.from_object(obj).key == "ops/fleet"
    with pytest.raises(InputError, match=r"ApplicationSet ops/fleet: spec.interval: "):
        ApplicationSet.from_object({**obj, "spec": {**SET["spec"], "interval": "soon"}})
