"""Caches of opened plugins are keyed by :func:`gitops.options.opened_with_key`: two
credentials given as ``SecretStr`` (whose ``repr`` is the same mask for any password)
never share one handle, and the key shows nothing of them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from gitops.apps.spec import Application
from gitops.operator import files
from gitops.operator.files import TargetStatusStore
from gitops.options import opened_with_key


def test_keys_tell_secret_values_apart_and_show_none() -> None:
    first = opened_with_key("k8s:", {"token": SecretStr("first-token")})
    assert first == opened_with_key("k8s:", {"token": SecretStr("first-token")})
    assert first != opened_with_key("k8s:", {"token": SecretStr("second-token")})
    assert first != opened_with_key("k8s:", {"token": "first-token", "context": "x"})
    assert "first-token" not in first


def _app(name: str, **options: Any) -> Application:
    return Application.model_validate({
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": "dir:/nowhere"},
                 "target": {"url": "k8s://prod", "options": options}}})


def test_status_store_opens_one_handle_per_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[dict[str, Any]] = []

    class Handle:
        url = "k8s://prod"

        def close(self) -> None:
            pass

    def open_target(url: str, **options: Any) -> Handle:
        opened.append(options)
        return Handle()

    monkeypatch.setattr(files, "open_target", open_target)
    store = TargetStatusStore()
    one = store.target(_app("a", token=SecretStr("first-token")))
    two = store.target(_app("b", token=SecretStr("second-token")))
    same = store.target(_app("c", token=SecretStr("first-token")))
    assert one is not two and one is same  # never the first app's credentials for the second
    assert [o["token"].get_secret_value() for o in opened] == ["first-token", "second-token"]
