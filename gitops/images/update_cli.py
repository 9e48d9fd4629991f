"""``gitops image update GIT_URL@BRANCH -f policies.yaml [-o json]``: one update, then exit.

Reads the ``ImagePolicy`` documents (and at most one ``ImageUpdateAutomation``, whose
commit and update settings are used) of the files, asks each policy for its latest
image, then clones the branch, rewrites the marked fields, commits and pushes once
(:func:`gitops.images.gitpush.update_repository`). Exit 0 whether or not anything
changed. The URL is shown without credentials.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Protocol

from pydantic import ValidationError

from gitops.apps.load import load_declarations
from gitops.apps.spec import Metadata
from gitops.errors import InputError
from gitops.images.gitpush import UpdateResult, update_repository
from gitops.images.latest import LatestImage, latest_image
from gitops.images.spec import (
    AutomationSpec,
    CommitAuthor,
    CommitSpec,
    GitCheckout,
    GitCheckoutRef,
    GitPush,
    GitSpec,
    ImageUpdateAutomation,
    UpdateSpec,
)
from gitops.sources.git.url import parse_git_url

__all__ = ["cmd_update"]

DEFAULT_AUTHOR = ("gitops", "gitops@localhost")
# the command line options behind each model an option fills
_OPTIONS = {"CommitAuthor": "--author-name/--author-email", "GitPush": "--push-branch",
            "UpdateSpec": "--path"}


class Out(Protocol):
    def write(self, text: str, /) -> object: ...


def cmd_update(args: argparse.Namespace, out: Out) -> int:
    """Run one update; ``args``: ``repository`` (GIT_URL@BRANCH), ``file`` (paths), ``output``
    ("text" | "json"), and optionally ``push_branch``, ``path``, ``author_name``,
    ``author_email``, ``message``, ``signing_key``, ``pin_digest``."""
    files = args.file if isinstance(args.file, list) else [args.file]
    declared = load_declarations(*files)
    automations = declared.of("ImageUpdateAutomation")
    automation = _automation(args, automations)
    policies = declared.of("ImagePolicy")
    if automations:  # a declared automation applies its namespace's policies only
        policies = automation.policies(policies)
    if not policies:
        where = f" in namespace {automation.namespace}" if automations else ""
        raise InputError(f"{', '.join(map(str, files))}: no ImagePolicy{where} to apply")
    pin = automation.spec.update.pin_digest
    choices = {p.ref: latest_image(p, with_digest=pin) for p in policies}
    result = update_repository(automation, choices)
    _print(result, automation, list(choices.values()), args, out)
    return 0


def _automation(args: argparse.Namespace, declared: tuple[Any, ...]) -> ImageUpdateAutomation:
    """The automation to run: the command line's URL and branch over the declared one's
    settings (or defaults)."""
    url = parse_git_url(args.repository)
    if url.ref is None or url.commit is not None:
        raise InputError(f"{url.display}: give the branch to update: GIT_URL@BRANCH")
    branch = url.ref.removeprefix("refs/heads/")
    bare = url.display.partition("#")[0].rpartition("@")[0]
    raw = args.repository.partition("#")[0]
    git_url = raw[: raw.rfind("@")]  # credentials kept: the push needs them
    if len(declared) > 1:
        raise InputError(f"the files declare {len(declared)} ImageUpdateAutomations "
                         f"({', '.join(a.key for a in declared)}); give one")
    base: ImageUpdateAutomation | None = declared[0] if declared else None
    name, email = DEFAULT_AUTHOR
    commit = CommitSpec(author=CommitAuthor(name=name, email=email))
    update = UpdateSpec()
    push: GitPush | None = None
    metadata = Metadata(name="gitops-image-update")
    if base is not None:
        commit, update, push, metadata = (base.spec.git.commit, base.spec.update,
                                          base.spec.git.push, base.metadata)
    try:  # the options' values, checked as the spec's fields are
        overrides = {
            "author": CommitAuthor(
                name=getattr(args, "author_name", None) or commit.author.name,
                email=getattr(args, "author_email", None) or commit.author.email),
            "message_template": getattr(args, "message", None) or commit.message_template,
            "signing_key": getattr(args, "signing_key", None) or commit.signing_key,
        }
        commit = commit.model_copy(update=overrides)
        if getattr(args, "push_branch", None):
            push = GitPush(branch=args.push_branch)
        path = getattr(args, "path", None)
        path = path if path not in (None, ".") else None  # "." is the option's default
        if path or getattr(args, "pin_digest", False):
            update = UpdateSpec(path=path or update.path, pin_digest=bool(
                getattr(args, "pin_digest", False)) or update.pin_digest)
    except ValidationError as exc:
        option = _OPTIONS.get(exc.title, exc.title)
        raise InputError(f"{option}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
                         ) from None
    try:
        git = GitSpec(url=git_url, checkout=GitCheckout(ref=GitCheckoutRef(branch=branch)),
                      commit=commit, push=push)
    except ValueError as exc:
        raise InputError(f"{bare}: {_first_error(exc)}") from None
    return ImageUpdateAutomation(metadata=metadata, spec=AutomationSpec(git=git, update=update))


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(exc)


def _print(result: UpdateResult, automation: ImageUpdateAutomation,
           chosen: list[LatestImage], args: argparse.Namespace, out: Out) -> None:
    shown = parse_git_url(automation.spec.git.url).display
    if getattr(args, "output", "text") == "json":
        document = {
            "url": shown,
            "branch": result.branch,
            "commit": result.commit,
            "pushed": result.pushed,
            "attempts": result.attempts,
            "images": [{"policy": c.policy, "image": c.image, "tag": c.tag,
                        "digest": c.digest} for c in chosen],
            "changes": [{"file": u.path, "line": c.line, "policy": c.policy,
                         "field": c.field, "old": c.old, "new": c.new}
                        for u in result.changes for c in u.changes],
            "unknown": [{"file": u.path, "line": m.line, "policy": m.policy}
                        for u in result.unknown for m in u.unknown],
        }
        out.write(json.dumps(document, indent=2) + "\n")
        return
    for choice in chosen:
        out.write(f"{choice.policy}: {choice.reference}"
                  + (f"@{choice.digest}" if choice.digest else "") + "\n")
    for update in result.unknown:
        for unknown in update.unknown:
            out.write(f"  {update.path}:{unknown.line}: no image policy {unknown.policy} "
                      "here; marker left alone\n")
    if result.commit is None:
        out.write(f"{shown} {result.branch}: up to date, nothing to commit\n")
        return
    for update in result.changes:
        for change in update.changes:
            out.write(f"  {update.path}:{change.line}: {change.old} -> {change.new}\n")
    out.write(f"{shown} {result.branch}: pushed {result.commit}\n")
