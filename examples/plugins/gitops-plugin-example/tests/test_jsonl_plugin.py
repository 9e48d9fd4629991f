"""What the kits cannot know about this plugin: its URL and options, its file, its lock
across processes, and the whole thing driven through gitops' registry and engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import gitops
import pytest
from gitops.errors import ApplyError, ConflictError, InvalidURLError, ManifestError, TargetError
from gitops.model import Inventory, Resource, ResourceKey
from gitops.renderers.base import Renderer
from gitops.targets.base import Target

from gitops_plugin_example import JsonlOptions, JsonlRenderer, JsonlTarget


def configmap(name: str, data: dict[Any, object]) -> Resource:
    return Resource.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name, "namespace": "app"}, "data": data},
                                  origin="apps/config.yaml#2")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "live.jsonl"


def installed() -> bool:
    try:
        metadata.distribution("gitops-plugin-example")
    except metadata.PackageNotFoundError:
        return False
    return True


needs_install = pytest.mark.skipif(
    not installed() and not os.environ.get("GITOPS_REQUIRE_EXAMPLE_PLUGIN"),
    reason="pip install -e examples/plugins/gitops-plugin-example (make test does)",
)

# -- URL and options ------------------------------------------------------------------------


def test_options_come_from_the_query_and_keywords_win(path: Path) -> None:
    target = JsonlTarget.from_url(f"jsonl:{path}?fsync=false&lock-timeout=2.5")
    assert target.options == JsonlOptions(fsync=False, lock_timeout=2.5)
    assert target.url == f"jsonl:{path}", "options do not belong in the target's URL"
    assert JsonlTarget.from_url(f"jsonl:{path}?fsync=false", fsync=True).options.fsync is True


@pytest.mark.parametrize(("url", "problem"), [
    ("jsonl:", "empty path"),
    ("jsonl://host/live.jsonl", "local file"),
    ("jsonl:live.jsonl?lock-timeout=-1", "lock-timeout"),
    ("jsonl:live.jsonl?fsync=maybe", "fsync"),
    ("jsonl:live.jsonl?fsnyc=false", "fsnyc"),
])
def test_a_bad_url_or_option_is_an_invalid_url_error(url: str, problem: str) -> None:
    with pytest.raises(InvalidURLError, match=problem):
        JsonlTarget.from_url(url)


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidURLError, match="names a folder"):
        JsonlTarget.from_url(f"jsonl:{tmp_path}")


# -- the file -------------------------------------------------------------------------------


def test_reading_and_dry_runs_create_nothing(path: Path) -> None:
    target = JsonlTarget.from_url(f"jsonl:{path}")
    key = configmap("web", {"a": "1"}).key
    assert target.live([key]) == {} and target.read_inventory("app") is None
    target.apply(configmap("web", {"a": "1"}), dry_run=True)
    assert target.delete(key, dry_run=True) is False
    assert dict(target.owners([key], "app")) == {}
    assert not path.exists() and list(path.parent.iterdir()) == []


def test_the_file_is_sorted_so_equal_states_are_equal_bytes(tmp_path: Path) -> None:
    first = JsonlTarget.from_url(f"jsonl:{tmp_path / 'a.jsonl'}", fsync=False)
    second = JsonlTarget.from_url(f"jsonl:{tmp_path / 'b.jsonl'}", fsync=False)
    resources = [configmap(name, {"v": name}) for name in ("b", "a", "c")]
    for resource in resources:
        first.apply(resource)
    for resource in reversed(resources):
        second.apply(resource)
    for target in (first, second):
        target.write_inventory("app", Inventory({r.key: "v1" for r in resources}, "r1"))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert [json.loads(line)["object"]["metadata"]["name"] for line in lines[:3]] == ["a", "b", "c"]
    assert json.loads(lines[3])["inventory"] == "app"


def test_a_corrupt_line_names_the_file_and_line_but_not_its_content(path: Path) -> None:
    target = JsonlTarget.from_url(f"jsonl:{path}", fsync=False)
    target.apply(configmap("web", {"a": "1"}))
    with path.open("a") as handle:
        handle.write('{"object": {"password": "hunter2-in-a-corrupt-line"\n')
    with pytest.raises(TargetError) as info:
        target.live([configmap("web", {}).key])
    message = str(info.value)
    assert str(path) in message and "line 2" in message
    assert "hunter2" not in message
    assert info.value.url == target.url


def test_values_json_cannot_hold_exactly_are_refused(path: Path) -> None:
    target = JsonlTarget.from_url(f"jsonl:{path}", fsync=False)
    int_keys = configmap("web", {1: "one"})  # YAML allows it; JSON would make it "1"
    with pytest.raises(ManifestError) as info:
        target.check([configmap("fine", {"a": "1"}), int_keys])
    assert info.value.path == "apps/config.yaml" and info.value.document == 2
    with pytest.raises(ApplyError, match="not a string"):
        target.apply(int_keys)
    with pytest.raises(ApplyError, match="not JSON data"):
        target.apply(configmap("nan", {"ratio": float("nan")}))
    assert not path.exists(), "a refused apply wrote the file"


def test_a_manifest_that_does_not_match_its_key_is_refused(path: Path) -> None:
    target = JsonlTarget.from_url(f"jsonl:{path}", fsync=False)
    resource = configmap("web", {"a": "1"})
    wrong = Resource(ResourceKey("", "ConfigMap", "app", "other"), "v1", resource.manifest)
    with pytest.raises(ApplyError, match="declares"):
        target.apply(wrong)


def test_temporary_files_of_dead_processes_are_swept(path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = path.parent / f".{path.name}.tmp-{dead}-abcd1234"
    mine = path.parent / f".{path.name}.tmp-{os.getpid()}-abcd1234"
    left.write_text("half a write")
    mine.write_text("a write in progress")
    JsonlTarget.from_url(f"jsonl:{path}", fsync=False).apply(configmap("web", {"a": "1"}))
    assert not left.exists(), "a dead process's temporary file was left behind"
    assert mine.exists(), "a live process's temporary file was removed"


# -- the lock, across processes -------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from gitops_plugin_example import JsonlTarget
    target = JsonlTarget.from_url(sys.argv[1])
    with target.lock("app"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"jsonl:{path}", str(seconds)],
                              stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_sync_lock_held_by_another_process_is_a_conflict_naming_it(path: Path) -> None:
    holder = _hold(path, 30)
    try:
        target = JsonlTarget.from_url(f"jsonl:{path}")
        with pytest.raises(ConflictError) as info, target.lock("app"):
            pass
        assert f"process {holder.pid}" in str(info.value) and info.value.url == target.url
    finally:
        holder.kill()
        holder.wait()
    with JsonlTarget.from_url(f"jsonl:{path}").lock("app"):  # a killed holder frees the lock
        pass


def test_lock_timeout_waits_for_the_other_sync(path: Path) -> None:
    holder = _hold(path, 0.5)
    try:
        with JsonlTarget.from_url(f"jsonl:{path}?lock-timeout=20").lock("app"):
            assert holder.poll() is not None or holder.wait(5) == 0
    finally:
        holder.kill()
        holder.wait()


# -- through gitops: the registry, the engine, the CLI --------------------------------------


@needs_install
def test_the_registry_opens_both_plugins_by_name(path: Path) -> None:
    target = gitops.open_target(f"jsonl:{path}?fsync=false")
    assert isinstance(target, JsonlTarget) and target.options.fsync is False
    assert isinstance(gitops.open_renderer("jsonl"), JsonlRenderer)
    names = {(p.kind, p.name): p.distribution for p in gitops.list_plugins()}
    assert names[("target", "jsonl")].startswith("gitops-plugin-example ")
    assert names[("renderer", "jsonl")].startswith("gitops-plugin-example ")


def test_the_engine_syncs_a_jsonl_source_into_a_jsonl_file(tmp_path: Path) -> None:
    source = tmp_path / "config"
    source.mkdir()
    lines = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"},
         "data": {"color": "blue"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api"},
         "data": {"color": "red"}},
    ]
    (source / "app.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    target: Target = JsonlTarget.from_url(f"jsonl:{tmp_path / 'live.jsonl'}", fsync=False)
    renderer: Renderer = JsonlRenderer()
    with gitops.Reconciler(f"dir:{source}", target, renderer=renderer, prune=True) as reconciler:
        result = reconciler.sync()
        assert result.succeeded, [r.message for r in result.failed]
        live = target.live([ResourceKey("", "ConfigMap", "default", "api")])
        assert live, "the unnamespaced ConfigMap was not placed in the default namespace"
        (source / "app.jsonl").write_text(json.dumps(lines[0]) + "\n")
        assert reconciler.sync().succeeded
        assert reconciler.plan().in_sync
    stored = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert [r["object"]["kind"] for r in stored if "object" in r] == ["Namespace"]
