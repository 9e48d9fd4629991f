"""``gitops image``: ``scan`` a repository's tags under a policy; ``update`` a Git repository.

``gitops image scan oci://HOST/REPO --policy semver:RANGE|alphabetical:asc|desc|
numerical:asc|desc [--filter-tags REGEX --extract '$ts'] [-o json]`` prints the chosen
tag (JSON: ``image``, ``policy``, ``tag``, ``digest``, ``tags``, ``round_trips``,
``cached``). ``gitops image update`` is parsed here and run by
:mod:`gitops.images.update_cli`. This module parses and prints; the registry is read
through :mod:`gitops.images.scan`, imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from gitops.errors import InputError
from gitops.images.spec import DEFAULT_EXCLUSION_LIST, TagFilter, TagPolicy
from gitops.urls import split_authority, userinfo_credentials

__all__ = ["COMMANDS", "add_commands", "cmd_image", "cmd_scan"]


class Out(Protocol):
    def write(self, text: str) -> None: ...


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)


def add_commands(sub: Any) -> None:
    """Add ``gitops image scan`` and ``gitops image update`` to the ``gitops`` parser."""
    image = sub.add_parser("image", help="image automation: scan tags, update Git")
    verbs = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")

    scan = verbs.add_parser("scan", help="print the tag a policy chooses in an image repository")
    scan.add_argument("image", metavar="oci://HOST/REPO", help="the image repository")
    scan.add_argument("--policy", required=True, metavar="POLICY",
                      help="semver:RANGE, alphabetical:asc|desc or numerical:asc|desc "
                           "(asc picks the greatest, desc the least)")
    scan.add_argument("--filter-tags", metavar="REGEX", default=None,
                      help="only tags matching this regular expression (named groups "
                           "(?P<name>...) or (?<name>...))")
    scan.add_argument("--extract", metavar="TEMPLATE", default=None,
                      help="order by this expansion of the match, e.g. '$ts' (needs "
                           "--filter-tags)")
    scan.add_argument("--exclude", action="append", default=None, metavar="REGEX",
                      help="never consider tags matching this (repeatable; default: "
                           "cosign signatures, '^.*\\.sig$')")
    scan.add_argument("--digest", action="store_true",
                      help="print TAG@DIGEST (the JSON output always has the digest)")
    scan.add_argument("--page-size", type=int, default=None, metavar="N",
                      help="tags asked for per page of the registry's tag list")
    scan.add_argument("--refresh", action="store_true",
                      help="ask the registry even when the tag cache is fresh")
    _output(scan)

    update = verbs.add_parser("update", help="rewrite the marked image fields in a Git "
                                             "repository to the policies' choices, commit, push")
    update.add_argument("repository", metavar="GIT_URL@BRANCH",
                        help="the configuration repository and branch (a Git source URL)")
    update.add_argument("-f", "--file", action="append", required=True, metavar="FILE",
                        help="YAML file declaring ImagePolicy documents (repeatable)")
    update.add_argument("--path", default=".",
                        help="folder of the repository whose files are updated")
    update.add_argument("--push-branch", default=None, metavar="BRANCH",
                        help="push to this branch instead of the checked-out one")
    update.add_argument("--author-name", default=None, metavar="NAME")
    update.add_argument("--author-email", default=None, metavar="EMAIL")
    update.add_argument("--message", default=None, metavar="TEMPLATE",
                        help="commit message template")
    update.add_argument("--signing-key", default=None, metavar="KEYID",
                        help="sign the commit with this GPG key")
    update.add_argument("--pin-digest", action="store_true",
                        help="write image:tag@sha256:... instead of image:tag")
    _output(update)


def cmd_image(args: argparse.Namespace, out: Out) -> int:
    """Run ``gitops image <command>``."""
    if args.image_command == "update":
        return _update_command()(args, out)
    return cmd_scan(args, out)


def _update_command() -> Callable[[argparse.Namespace, Out], int]:
    """``gitops.images.update_cli.cmd_update`` (the Git updater's), imported on use."""
    import importlib

    try:
        module = importlib.import_module("gitops.images.update_cli")
    except ModuleNotFoundError as exc:
        if exc.name != "gitops.images.update_cli":
            raise
        raise InputError("gitops image update is not available in this build "
                         "(gitops.images.update_cli is missing)") from None
    command: Callable[[argparse.Namespace, Out], int] = module.cmd_update
    return command


def cmd_scan(args: argparse.Namespace, out: Out) -> int:
    """``gitops image scan``: exit 0 with the chosen tag; 2 (an InputError) when none fits."""
    from gitops.images.policy import select_tag
    from gitops.images.scan import DEFAULT_PAGE_SIZE, ImageRepository, TagCache, scan_tags

    policy = TagPolicy.parse(args.policy)
    tag_filter = _tag_filter(args)
    image, credentials = _without_credentials(args.image)
    cache = TagCache()
    page_size = args.page_size if args.page_size is not None else DEFAULT_PAGE_SIZE
    with ImageRepository(image, page_size=page_size, **credentials) as repo:
        if args.refresh:
            cache.invalidate(repo.ref, scope=repo.cache_scope)
        exclude = DEFAULT_EXCLUSION_LIST if args.exclude is None else tuple(args.exclude)
        result = scan_tags(image, exclude=exclude, cache=cache, repository=repo)
        tag = select_tag(result.tags, policy, tag_filter)
        if tag is None:
            raise InputError(f"{repo.display}: no tag matches {policy.describe()}"
                             + (" and --filter-tags" if tag_filter is not None else "")
                             + f" ({len(result.tags)} tags considered)")
        digest = repo.digest(tag) if args.digest or args.output == "json" else None
        round_trips = result.round_trips + (1 if digest is not None else 0)
        display = repo.display
    if args.output == "json":
        out.write(json.dumps({
            "image": display, "policy": policy.describe(), "tag": tag, "digest": digest,
            "tags": list(result.tags), "round_trips": round_trips, "cached": result.cached,
        }, indent=2) + "\n")
    else:
        out.write(f"{tag}@{digest}\n" if args.digest else f"{tag}\n")
    return 0


def _without_credentials(url: str) -> tuple[str, dict[str, Any]]:
    """``oci://user:password@host/repo`` as ``oci://host/repo`` and the credentials, which
    then go as options (as the OCI source reads a URL's userinfo)."""
    if not url.lower().startswith("oci://"):
        return url, {}
    userinfo, hostport, rest = split_authority(url[len("oci://"):])
    username, password = userinfo_credentials(userinfo)
    if username is None and password is None:
        return url, {}
    return f"oci://{hostport}{rest}", {"username": username, "password": password}


def _tag_filter(args: argparse.Namespace) -> TagFilter | None:
    if args.filter_tags is None:
        if args.extract is not None:
            raise InputError("--extract needs --filter-tags (the pattern whose groups it names)")
        return None
    try:
        return TagFilter(pattern=args.filter_tags, extract=args.extract or "")
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InputError(f"--filter-tags/--extract: {problems}") from None


COMMANDS: dict[str, Callable[[argparse.Namespace, Out], int]] = {"image": cmd_image}
