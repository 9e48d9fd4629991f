"""The image automation documents: ImagePolicy and ImageUpdateAutomation (gitops.images.spec)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gitops.apps import load_applications
from gitops.apps.load import load_declarations
from gitops.errors import InputError, ManifestError
from gitops.images.spec import (
    DEFAULT_EXCLUSION_LIST,
    ImagePolicy,
    ImageUpdateAutomation,
    TagFilter,
    TagPolicy,
    compile_go_regex,
)

SECRET = "s3cr3t-pw-xyz"

FILE = """\
apiVersion: gitops.dev/v1alpha1
kind: ImagePolicy
metadata: {name: shop, namespace: prod}
spec:
  image: 127.0.0.1:5000/shop/app
  policy: {semver: {range: ">=1.0.0 <2.0.0"}}
  filterTags: {pattern: '^main-[a-f0-9]+-(?<ts>[0-9]+)$', extract: '$ts'}
  exclusionList: ['^dev-']
  interval: 1m
  options: {username: bot, password: @SECRET@}
---
apiVersion: gitops.dev/v1alpha1
kind: ImageUpdateAutomation
metadata: {name: auto, namespace: prod}
spec:
  interval: 10m
  git:
    url: git+https://bot:@SECRET@@git.example.com/config.git
    checkout: {ref: {branch: main}}
    commit:
      author: {name: Image Bot, email: bot@example.com}
      messageTemplate: "images: {{ changes }}"
      signingKey: ABCDEF0123456789
    push: {branch: image-updates}
  update: {path: ./clusters/prod, pinDigest: true}
""".replace("@SECRET@", SECRET)


def policy(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"image": "registry.example.com/team/app",
                            "policy": {"alphabetical": {}}}
    base.update(spec)
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
            "metadata": {"name": "p"}, "spec": base}


def automation(**git: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": "git+https://git.example.com/config.git",
                            "checkout": {"ref": {"branch": "main"}},
                            "commit": {"author": {"name": "bot", "email": "bot@example.com"}}}
    spec.update(git)
    return {"apiVersion": "gitops.dev/v1alpha1", "kind": "ImageUpdateAutomation",
            "metadata": {"name": "a"}, "spec": {"git": spec}}


def test_a_file_may_declare_only_image_documents(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(FILE)
    declared = load_declarations(path)
    assert load_applications(path) == []
    (pol,) = declared.of("ImagePolicy")
    (auto,) = declared.of("ImageUpdateAutomation")
    assert isinstance(pol, ImagePolicy) and isinstance(auto, ImageUpdateAutomation)
    assert (pol.key, pol.ref) == ("prod/shop", "prod:shop")
    assert pol.spec.policy.kind == "semver" and pol.spec.policy.describe() == "semver:>=1.0.0 <2.0.0"
    assert pol.spec.filter_tags is not None and pol.spec.filter_tags.extract == "$ts"
    assert pol.spec.exclusion_list == ("^dev-",)
    assert pol.spec.interval == 60.0
    assert auto.key == "prod/auto"
    assert auto.spec.interval == 600.0
    assert auto.spec.git.checkout.ref.branch == "main"
    assert auto.spec.git.push_branch == "image-updates"
    assert auto.spec.git.commit.signing_key == "ABCDEF0123456789"
    assert auto.spec.git.commit.message_template == "images: {{ changes }}"
    assert auto.spec.update.path == "clusters/prod" and auto.spec.update.pin_digest is True
    assert auto.policies(declared.of("ImagePolicy")) == (pol,)
    for shown in (repr(pol), repr(auto), repr(declared)):
        assert SECRET not in shown
    # the document round-trips through to_dict
    assert ImagePolicy.model_validate(pol.to_dict()) == pol
    assert ImageUpdateAutomation.model_validate(auto.to_dict()) == auto


def test_defaults_follow_flux() -> None:
    pol = ImagePolicy.model_validate(policy())
    assert pol.namespace == "default" and pol.ref == "default:p"
    assert pol.spec.interval == 300.0
    assert pol.spec.exclusion_list == DEFAULT_EXCLUSION_LIST  # cosign signatures never chosen
    assert pol.spec.policy.order == "asc"
    auto = ImageUpdateAutomation.model_validate(automation())
    assert auto.spec.update.path == "." and auto.spec.update.pin_digest is False
    assert auto.spec.git.push_branch == "main"
    assert auto.spec.interval == 300.0


@pytest.mark.parametrize(("spec", "where"), [
    ({"policy": {}}, "spec.policy"),
    ({"policy": {"semver": {"range": "1.x"}, "alphabetical": {}}}, "spec.policy"),
    ({"policy": {"semver": {"range": ">=>=1"}}}, "spec.policy.semver.range"),
    ({"policy": {"numerical": {"order": "up"}}}, "spec.policy.numerical.order"),
    ({"filterTags": {"pattern": "(unclosed"}}, "spec.filterTags.pattern"),
    ({"filterTags": {"pattern": "^(?P<ts>[0-9]+)$", "extract": "$tss"}}, "spec.filterTags"),
    ({"exclusionList": ["ok", "[bad"]}, "spec.exclusionList"),
    ({"image": "app"}, "spec.image"),
    ({"image": "oci://host/app"}, "spec.image"),
    ({"image": "host/app:1.0"}, "spec.image"),
    ({"image": "host/app@sha256:" + "0" * 64}, "spec.image"),
    ({"image": f"bot:{SECRET}@host/app"}, "spec.image"),
    ({"options": {"passwd": "x"}}, "spec.options"),
    ({"options": {"timeout": SECRET}}, "spec.options"),
    ({"interval": "5 minutes"}, "spec.interval"),
    ({"imagee": "x"}, "spec.imagee"),
])
def test_invalid_policies_name_the_field_never_the_value(
    tmp_path: Path, spec: dict[str, Any], where: str
) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(policy(**spec)))
    with pytest.raises(ManifestError) as caught:
        load_declarations(path)
    message = str(caught.value)
    assert where in message and str(path) in message
    assert SECRET not in message


@pytest.mark.parametrize(("git", "where"), [
    ({"url": "git+https://host/config.git@main"}, "spec.git.url"),
    ({"url": "https://host/config.git"}, "spec.git.url"),
    ({"checkout": {"ref": {"branch": "bad..name"}}}, "spec.git.checkout.ref.branch"),
    ({"push": {"branch": ""}}, "spec.git.push.branch"),
    ({"commit": {"author": {"name": "x"}}}, "spec.git.commit.author.email"),
])
def test_invalid_automations_name_the_field(git: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ImageUpdateAutomation.model_validate(automation(**git))
    assert where.removeprefix("spec.") in str(caught.value).replace("\n", " ").replace(" ", ".")


def test_update_path_must_stay_inside_the_repository() -> None:
    data = automation()
    data["spec"]["update"] = {"path": "../elsewhere"}
    with pytest.raises(ValidationError):
        ImageUpdateAutomation.model_validate(data)


def test_a_duplicate_policy_is_an_error(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump_all([policy(), policy()]))
    with pytest.raises(ManifestError, match="ImagePolicy default/p is already declared"):
        load_declarations(path)


def test_go_named_groups_are_accepted_in_both_spellings() -> None:
    for pattern in (r"^(?P<ts>\d+)$", r"^(?<ts>\d+)$"):
        regex = compile_go_regex(pattern)
        match = regex.search("123")
        assert match is not None and match.group("ts") == "123"
    assert compile_go_regex(r"\(?<x>").search("(<x>") is not None  # an escaped paren stays literal
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_go_regex("(?<ts>")


def test_the_command_line_policy_form() -> None:
    assert TagPolicy.parse("semver:^1.2").describe() == "semver:^1.2"
    assert TagPolicy.parse("alphabetical:desc").order == "desc"
    assert TagPolicy.parse("numerical").describe() == "numerical:asc"
    for bad in ("semver:", "semver:>=>=1", "numerical:up", "latest", ""):
        with pytest.raises(InputError, match="--policy"):
            TagPolicy.parse(bad)
    assert TagFilter(pattern="^v").extract == ""


@pytest.mark.parametrize(("name", "email"), [
    ("bot\ncommitter Evil <evil@example.com> 0 +0000", "bot@example.com"),
    ("bot", "bot@example.com>\nencoding evil"),
    ("Bot <other@example.com>", "bot@example.com"),
    ("bot", "<bot@example.com>"),
    ("bot\r", "bot@example.com"),
    ("bot", "bot@exa\x00mple.com"),
])
def test_an_author_that_would_forge_commit_headers_is_refused(name: str, email: str) -> None:
    # the identity is written into the commit object as "NAME <EMAIL> TIME": a newline
    # there adds headers of the author's choosing, an angle bracket moves the email
    data = automation(commit={"author": {"name": name, "email": email}})
    with pytest.raises(ValidationError, match="author"):
        ImageUpdateAutomation.model_validate(data)
