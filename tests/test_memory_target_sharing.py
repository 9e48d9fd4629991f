"""The in-memory target shared by several reconcilers: sync lock, owners, options, imports."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import gitops
from gitops.errors import ConflictError, InvalidURLError
from gitops.model import Inventory, ResourceKey
from gitops.targets.memory import MemoryOptions, MemoryTarget
from gitops.testing import FailNth, FailureRate, FaultInjector, Latency

A = ResourceKey("", "ConfigMap", "team-a", "a")
B = ResourceKey("", "ConfigMap", "team-a", "b")
C = ResourceKey("", "ConfigMap", "team-a", "c")


@pytest.fixture(autouse=True)
def _no_shared_targets() -> Iterator[None]:
    MemoryTarget.clear_shared()
    yield
    MemoryTarget.clear_shared()


# -- lock ----------------------------------------------------------------------------------


def test_a_second_sync_of_the_shared_state_gets_a_conflict_naming_the_holder() -> None:
    first = gitops.open_target("mock:cluster?lock_timeout=0")
    second = gitops.open_target("mock:cluster?lock_timeout=0&failure_rate=0")
    assert first is not second  # two handles on one state
    with first.lock("app-a"):
        with pytest.raises(ConflictError) as info, second.lock("app-b"):
            pass
        assert "another sync of mock:cluster" in str(info.value)
        assert "'app-a'" in str(info.value)
        assert info.value.url.startswith("mock:cluster")
    with second.lock("app-b"):  # released on exit
        pass


def test_the_lock_is_released_when_the_sync_raises() -> None:
    target = MemoryTarget(lock_timeout=0)
    with pytest.raises(RuntimeError), target.lock("a"):
        raise RuntimeError("sync failed")
    with target.lock("a"):
        pass


def test_a_waiting_sync_gets_the_lock_when_the_holder_ends() -> None:
    target = MemoryTarget(lock_timeout=5)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with target.lock("a"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    threading.Timer(0.1, release.set).start()
    with target.with_faults().lock("b"):  # waits about 0.1 s, then holds
        assert release.is_set()  # the holder let go only after this was set
    thread.join()


def test_separate_mock_targets_do_not_share_a_lock() -> None:
    with MemoryTarget(lock_timeout=0).lock("a"), MemoryTarget(lock_timeout=0).lock("a"):
        pass


def test_lock_records_no_call() -> None:
    target = MemoryTarget()
    with target.lock("a"):
        target.owners([A], "a")
    assert target.calls == []


# -- owners --------------------------------------------------------------------------------


def test_owners_are_the_other_inventories_listing_the_keys() -> None:
    target = MemoryTarget()
    target.write_inventory("a", Inventory({A: "v1", B: "v1"}))
    target.write_inventory("b", Inventory({B: "v1", C: "v1"}))
    target.write_inventory("c", Inventory({C: "v1"}))
    assert target.owners([A, B, C], "a") == {B: "b", C: "b"}  # the first name of several
    assert target.owners([A, B, C], "b") == {A: "a", B: "a", C: "c"}
    assert target.owners([A], "a") == {}
    assert target.owners([A, B], "new") == {A: "a", B: "a"}
    target.write_inventory("b", Inventory({}))  # b dropped its keys
    assert target.owners([A, B, C], "a") == {C: "c"}


# -- options -------------------------------------------------------------------------------


def test_url_and_keyword_options_go_through_one_model() -> None:
    from_url = gitops.open_target("mock:?failure_rate=0.5&seed=3&methods=apply&lock_timeout=1")
    from_keywords = gitops.open_target(
        "mock:", failure_rate=0.5, seed=3, methods=["apply"], lock_timeout=1
    )
    for target in (from_url, from_keywords):
        assert isinstance(target, MemoryTarget) and target.lock_timeout == 1.0
        (rule,) = target.faults.faults
        assert isinstance(rule, FailureRate)
        assert (rule.rate, rule.seed, rule.methods) == (0.5, 3, frozenset({"apply"}))
    with pytest.raises(InvalidURLError, match=r"^mock:: option lock_timout"):
        gitops.open_target("mock:", lock_timout=1)
    with pytest.raises(InvalidURLError, match="seed"):
        gitops.open_target("mock:", seed="x")


def test_keyword_faults_follow_the_query_faults() -> None:
    injector = FaultInjector([FailNth(1)])
    target = MemoryTarget.from_url("mock:?latency=0.01", faults=injector)
    latency, nth = target.faults.faults
    assert isinstance(latency, Latency) and isinstance(nth, FailNth)
    assert MemoryOptions(latency_max=0.5).fault_rules()[0].__class__ is Latency


def test_a_shared_name_with_another_lock_timeout_is_a_new_handle() -> None:
    base = gitops.open_target("mock:x")
    quick = gitops.open_target("mock:x?lock_timeout=0")
    assert isinstance(quick, MemoryTarget) and quick is not base and quick.lock_timeout == 0
    assert gitops.open_target("mock:x") is base


def test_the_mock_target_does_not_import_the_test_kits() -> None:
    code = (
        "import sys, gitops.targets.memory, gitops.plugins\n"
        "gitops.plugins.open_target('mock:?failure_rate=0.1')\n"
        "print([m for m in sys.modules if m.startswith('gitops.testing')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
