"""A target that quotes the Secret it refuses: no event, log line or result repeats it.

API servers and admission webhooks quote the object they refuse, and a plugin's bug
may put it in its exception. The Kubernetes target masks its own messages; whatever
another target raises reaches the engine as text, so results, events and logs must
mask the values of the Secret the change concerns.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from gitops import Reconciler
from gitops.errors import ApplyError
from gitops.model import Event, Outcome, Resource, SyncResult
from gitops.targets.memory import MemoryTarget

PASSWORD = "Hunter2-correct-horse-battery"
TOKEN = "tok-9f8e7d6c5b4a"
SECRET_YAML = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  password: {PASSWORD}
data:
  token: {base64.b64encode(TOKEN.encode()).decode()}
"""
FORMS = [PASSWORD, TOKEN, base64.b64encode(PASSWORD.encode()).decode(),
         base64.b64encode(TOKEN.encode()).decode()]


class QuotingTarget(MemoryTarget):
    """A target whose apply quotes the object: in an ApplyError, or a bug's exception."""

    bug = False

    def apply(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        body = json.dumps(resource.manifest)
        if self.bug:
            raise RuntimeError(f"cannot serialize {body}")
        raise ApplyError(resource.key, f'admission webhook "policy" denied the request: {body}')


def sync_refused(tmp_path: Path, *, bug: bool) -> tuple[SyncResult, list[Event]]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "secret.yaml").write_text(SECRET_YAML)
    target = QuotingTarget("mock:")
    target.bug = bug
    events: list[Event] = []
    reconciler = Reconciler(str(tmp_path / "src"), target, on_event=events.append)
    result = reconciler.sync()
    return result, events


def assert_hidden(text: str) -> None:
    for form in FORMS:
        assert form not in text, (form, text)


@pytest.mark.parametrize("bug", [False, True], ids=["refusal", "plugin-bug"])
def test_results_never_repeat_a_refused_secret(tmp_path: Path, bug: bool) -> None:
    result, _ = sync_refused(tmp_path, bug=bug)
    assert not result.succeeded
    (failed,) = result.failed
    assert failed.outcome is Outcome.FAILED and failed.message  # the server's words stay
    assert_hidden(json.dumps(result.to_dict()))
    assert_hidden(repr(result) + str(result))


@pytest.mark.parametrize("bug", [False, True], ids=["refusal", "plugin-bug"])
def test_events_and_logs_never_repeat_a_refused_secret(
    tmp_path: Path, bug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, events = sync_refused(tmp_path, bug=bug)
    assert any(e.warning for e in events)
    assert_hidden("\n".join(f"{e.reason}: {e.message}" for e in events) + repr(events))
    assert_hidden(caplog.text)
