"""The emulator's stand-in Job controller: Jobs run for a moment, then complete or fail."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gitops.testing.kube import KubeEmulator
from gitops.testing.kube.jobs import JOB_DURATION_ANNOTATION, JOB_RESULT_ANNOTATION
from gitops.testing.kube.kubectl import Kubectl

JOBS = "/apis/batch/v1/namespaces/default/jobs"
MERGE = "application/merge-patch+json"


def job(name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
                     **spec}}


def wait_for_status(emu: KubeEmulator, name: str, key: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = emu.expect_ok("GET", f"{JOBS}/{name}").get("status") or {}
        if key in status:
            return dict(status)
        time.sleep(0.01)
    raise AssertionError(f"Job {name} never got status.{key}")


def conditions(status: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["type"], c["status"], c["reason"], c["message"]) for c in status.get("conditions", [])]


def test_a_job_starts_then_completes_and_watches_see_both(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    start = emu.expect_ok("GET", JOBS)["metadata"]["resourceVersion"]
    began = time.monotonic()
    created = emu.expect_ok("POST", JOBS, job("migrate"))
    events = emu.watch(f"{JOBS}?resourceVersion={start}", count=3, timeout=5)
    took = time.monotonic() - began
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED"]
    assert created["status"] == {} and events[0]["object"]["status"] == {}
    running = events[1]["object"]["status"]
    assert running == {"startTime": running["startTime"], "active": 1, "ready": 0, "terminating": 0,
                       "uncountedTerminatedPods": {}}
    done = events[2]["object"]["status"]
    assert conditions(done) == [
        ("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")]
    assert done["succeeded"] == 1 and done["startTime"] == running["startTime"] and "active" not in done
    assert done["completionTime"] >= done["startTime"]
    assert all(c["lastTransitionTime"] == done["completionTime"] for c in done["conditions"])
    assert took >= 0.2  # the default duration
    owners = {(m["manager"], m.get("subresource")) for m in events[2]["object"]["metadata"]["managedFields"]}
    assert ("kube-controller-manager", "status") in owners


def test_a_job_annotated_to_fail_fails_after_its_backoff(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    emu.expect_ok("POST", JOBS, job("broken", annotations={JOB_RESULT_ANNOTATION: "Failed", JOB_DURATION_ANNOTATION: "0"},
                             backoffLimit=2))
    status = wait_for_status(emu, "broken", "conditions")
    assert conditions(status) == [
        ("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
    assert status["failed"] == 3 and "completionTime" not in status and "succeeded" not in status


def test_the_duration_annotation_is_honoured(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    began = time.monotonic()
    emu.expect_ok("POST", JOBS, job("slow", annotations={JOB_DURATION_ANNOTATION: "0.6"}, completions=2, parallelism=2))
    assert emu.expect_ok("GET", f"{JOBS}/slow")["status"]["active"] == 2
    status = wait_for_status(emu, "slow", "completionTime")
    assert time.monotonic() - began >= 0.6 and status["succeeded"] == 2


def test_many_jobs_share_one_scheduler_thread(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    before = threading.active_count()
    for i in range(40):
        emu.expect_ok("POST", JOBS, job(f"j{i}", annotations={JOB_DURATION_ANNOTATION: "0.3"}))
    scheduler = emu.api.jobs._thread
    assert scheduler is not None and scheduler.is_alive()
    assert [t for t in threading.enumerate() if t.name == scheduler.name] == [scheduler]
    assert threading.active_count() < before + 10  # not a thread per Job (finishing HTTP threads aside)
    assert emu.api.jobs.pending() == 40
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and emu.api.jobs.pending():
        time.sleep(0.02)
    done = [item.get("status", {}).get("succeeded") for item in emu.expect_ok("GET", JOBS)["items"]]
    assert done == [1] * 40


@pytest.mark.parametrize(("annotations", "field"), [
    ({JOB_DURATION_ANNOTATION: "soon"}, JOB_DURATION_ANNOTATION),
    ({JOB_DURATION_ANNOTATION: "-1"}, JOB_DURATION_ANNOTATION),
    ({JOB_RESULT_ANNOTATION: "Complete"}, JOB_RESULT_ANNOTATION),
])
def test_unusable_annotation_values_are_refused(kube_emulator: KubeEmulator, annotations: dict[str, str], field: str) -> None:
    code, body = kube_emulator.request("POST", JOBS, job("x", annotations=annotations))
    assert code == 422
    [cause] = body["details"]["causes"]
    assert cause["field"] == f"metadata.annotations[{field}]"


def test_suspended_and_progressing_jobs_do_not_finish(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    emu.expect_ok("POST", JOBS, job("held", suspend=True, annotations={JOB_DURATION_ANNOTATION: "0"}))
    emu.expect_ok("POST", JOBS, job("forever", annotations={"kube-emulator.gitops.dev/rollout": "progressing"}))
    assert emu.expect_ok("GET", f"{JOBS}/held")["status"] == {}
    assert emu.expect_ok("GET", f"{JOBS}/forever")["status"]["active"] == 1
    emu.expect_ok("PATCH", f"{JOBS}/held", {"spec": {"suspend": False}}, content_type=MERGE)  # resumed: it runs now
    assert wait_for_status(emu, "held", "completionTime")["succeeded"] == 1
    assert emu.api.jobs.pending() == 0 and "conditions" not in emu.expect_ok("GET", f"{JOBS}/forever")["status"]


def test_a_job_deleted_while_running_is_left_alone(kube_emulator: KubeEmulator) -> None:
    emu = kube_emulator
    emu.expect_ok("POST", JOBS, job("gone", annotations={JOB_DURATION_ANNOTATION: "0.1"}))
    emu.expect_ok("DELETE", f"{JOBS}/gone")
    emu.expect_ok("POST", JOBS, job("gone", annotations={JOB_DURATION_ANNOTATION: "5"}))  # same name, another uid
    deadline = time.monotonic() + 5
    while emu.api.jobs.pending() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "completionTime" not in emu.expect_ok("GET", f"{JOBS}/gone")["status"]  # the old schedule did not end it


def test_the_scheduler_stops_with_the_emulator() -> None:
    emu = KubeEmulator().start()
    emu.expect_ok("POST", JOBS, job("pending", annotations={JOB_DURATION_ANNOTATION: "30"}))
    thread = emu.api.jobs._thread
    assert thread is not None and thread.is_alive()
    began = time.monotonic()
    emu.stop()
    assert not thread.is_alive() and time.monotonic() - began < 2


def test_no_controllers_no_job_status() -> None:
    with KubeEmulator(controllers=False) as emu:
        emu.expect_ok("POST", JOBS, job("quiet", annotations={JOB_DURATION_ANNOTATION: "0"}))
        assert emu.expect_ok("GET", f"{JOBS}/quiet")["status"] == {} and emu.api.jobs._thread is None


def test_kubectl_wait_for_a_job_to_complete(kube_emulator: KubeEmulator, kube_kubectl: Kubectl) -> None:
    kube_emulator.expect_ok("POST", JOBS, job("hook", annotations={JOB_DURATION_ANNOTATION: "0.3"}))
    done = kube_kubectl("wait", "--for=condition=complete", "job/hook", "--timeout=10s")
    assert done.stdout.strip() == "job.batch/hook condition met"
