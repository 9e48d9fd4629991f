"""The image automation documents (``gitops.dev/v1alpha1``): ``ImagePolicy`` and ``ImageUpdateAutomation``.

Modelled on Flux's image APIs (image-reflector's ImageRepository and ImagePolicy,
image-automation's ImageUpdateAutomation), with the image repository folded into the
policy: one ``ImagePolicy`` names the image, which tags to consider and how to order
them. Pydantic models, camelCase names as written (snake_case accepted from Python),
unknown fields refused, as :mod:`gitops.apps.spec`. This module only describes and
validates; it never contacts a registry or a Git server, and neither its errors nor
``repr()`` show a registry option's value or a URL's credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gitops.apps.durations import Duration
from gitops.apps.spec import Document, Metadata
from gitops.errors import InputError
from gitops.urls import scrub

__all__ = [
    "DEFAULT_EXCLUSION_LIST",
    "REGISTRY_OPTIONS",
    "AutomationSpec",
    "CommitAuthor",
    "CommitSpec",
    "GitCheckout",
    "GitCheckoutRef",
    "GitPush",
    "GitSpec",
    "ImagePolicy",
    "ImagePolicySpec",
    "ImageUpdateAutomation",
    "OrderPolicy",
    "SemverPolicy",
    "TagFilter",
    "TagPolicy",
    "UpdateSpec",
    "compile_go_regex",
]

#: Flux's default exclusion list: cosign signature tags (``sha256-….sig``) are never images.
DEFAULT_EXCLUSION_LIST: tuple[str, ...] = (r"^.*\.sig$",)

#: the OCI transport options an ImagePolicy may set in ``spec.options`` (see docs/oci.md)
REGISTRY_OPTIONS = frozenset({
    "username", "password", "docker_config", "ca_bundle", "insecure", "plain_http", "timeout",
})

# Go's RE2 named group ``(?<name>`` is Python's ``(?P<name>``; ``(?P<name>`` is in both.
_GO_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?=[A-Za-z_])")


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` (Go RE2 syntax, as Flux reads it) compiled by Python's ``re``.

    Named groups may be written ``(?P<name>...)`` or ``(?<name>...)``. Raises ValueError
    (saying what is wrong, not quoting the pattern) when it does not compile.
    """
    try:
        return re.compile(_GO_NAMED_GROUP.sub("(?P<", pattern))
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"invalid regular expression: {exc.msg}{where}") from None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Document(Document):
    """What both documents share besides their fields and :class:`Document`'s: repr."""

    if TYPE_CHECKING:
        spec: Any

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "key", self.key
        yield "spec", self.spec


# -- ImagePolicy ---------------------------------------------------------------------------


class SemverPolicy(_Model):
    """``policy.semver``: the highest version within ``range`` (Masterminds/npm range syntax)."""

    range: str = Field(min_length=1, description="e.g. '>=1.0.0 <2.0.0', '^1.2', '1.x'")

    @field_validator("range")
    @classmethod
    def _parses(cls, value: str) -> str:
        from gitops.versions import parse_range

        try:
            parse_range("policy.semver.range", value)
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("policy.semver.range: ")) from None
        return value


class OrderPolicy(_Model):
    """``policy.alphabetical`` / ``policy.numerical``: ``asc`` picks the greatest, ``desc`` the least."""

    order: Literal["asc", "desc"] = "asc"


class TagPolicy(_Model):
    """``spec.policy``: exactly one of ``semver``, ``alphabetical`` or ``numerical``."""

    semver: SemverPolicy | None = None
    alphabetical: OrderPolicy | None = None
    numerical: OrderPolicy | None = None

    @model_validator(mode="after")
    def _one(self) -> TagPolicy:
        given = [name for name in ("semver", "alphabetical", "numerical") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of semver, alphabetical or numerical")
        return self

    @property
    def kind(self) -> Literal["semver", "alphabetical", "numerical"]:
        """Which ordering this policy uses."""
        if self.semver is not None:
            return "semver"
        return "alphabetical" if self.alphabetical is not None else "numerical"

    @property
    def order(self) -> Literal["asc", "desc"]:
        """``asc`` or ``desc`` (a semver policy always picks the highest: ``asc``)."""
        chosen = self.alphabetical or self.numerical
        return chosen.order if chosen is not None else "asc"

    @classmethod
    def parse(cls, text: str) -> TagPolicy:
        """The command line's form: ``semver:RANGE``, ``alphabetical:asc|desc``,
        ``numerical:asc|desc`` (the order defaults to ``asc``). Raises InputError."""
        kind, _, arg = text.partition(":")
        try:
            if kind == "semver":
                return cls(semver=SemverPolicy(range=arg))
            if kind in ("alphabetical", "numerical"):
                return cls.model_validate({kind: {"order": arg or "asc"}})
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise InputError(f"--policy {kind}: {problems}") from None
        raise InputError("--policy must be semver:RANGE, alphabetical:asc|desc or "
                         "numerical:asc|desc")

    def describe(self) -> str:
        """The policy as the command line writes it (``semver:^1.0``, ``numerical:desc``)."""
        if self.semver is not None:
            return f"semver:{self.semver.range}"
        return f"{self.kind}:{self.order}"


class TagFilter(_Model):
    """``spec.filterTags``: keep tags matching ``pattern``; order by ``extract`` (e.g. ``$ts``).

    ``pattern`` is a regular expression (Go RE2 syntax as Flux; named groups
    ``(?P<ts>...)`` or ``(?<ts>...)``); ``extract`` expands ``$name``, ``${name}`` or
    ``$1`` against the match and the policy orders these values, answering the original
    tag. An empty ``extract`` orders the tags themselves.
    """

    pattern: str = Field(default="", description="regular expression a tag must match")
    extract: str = Field(default="", description="what the policy orders, e.g. '$ts'")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_go_regex(value)
        return value

    @model_validator(mode="after")
    def _groups_exist(self) -> TagFilter:
        if self.extract:
            from gitops.images.policy import check_extract  # one reader of templates

            check_extract(compile_go_regex(self.pattern), self.extract)
        return self

    @property
    def regex(self) -> re.Pattern[str]:
        """``pattern`` compiled (Python ``re``)."""
        return compile_go_regex(self.pattern)


class ImagePolicySpec(_Model):
    """``spec`` of an ImagePolicy: which repository, which tags, which order, how often."""

    image: str = Field(description="HOST[:PORT]/REPO, no scheme, tag or digest")
    policy: TagPolicy
    filter_tags: TagFilter | None = Field(default=None, alias="filterTags")
    exclusion_list: tuple[str, ...] = Field(
        default=DEFAULT_EXCLUSION_LIST, alias="exclusionList",
        description="regular expressions; matching tags are never considered",
    )
    interval: Duration = Field(default="5m", gt=0, validate_default=True,
                               description="how often the repository is scanned")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="OCI transport options (username, password, docker_config, ca_bundle, "
                    "insecure, plain_http, timeout); credentials usually come from the "
                    "environment or a Docker config.json",
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        from gitops.errors import InvalidURLError
        from gitops.images.scan import parse_image  # the one parser of image names

        if "://" in value:
            raise ValueError("an image is HOST[:PORT]/REPO, without a scheme")
        try:
            parse_image(value)
        except InvalidURLError as exc:
            raise ValueError(exc.reason) from None
        return value

    @field_validator("exclusion_list")
    @classmethod
    def _exclusions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(value):
            try:
                compile_go_regex(pattern)
            except ValueError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - REGISTRY_OPTIONS)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(REGISTRY_OPTIONS))})")
        from gitops.sources.oci.options import OCIOptions

        try:
            OCIOptions.model_validate(value)
        except ValidationError as exc:  # names only: values may be credentials
            names = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
            raise ValueError(f"invalid value for option(s) {', '.join(names)}") from None
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (sorted(self.options) if key == "options" else value)


class ImagePolicy(_Document):
    """``kind: ImagePolicy``: the newest allowed tag of one image repository.

    Setter markers in Git name it ``NAMESPACE:NAME`` (:attr:`ref`).
    """

    api_version: Literal["gitops.dev/v1alpha1"] = Field(default="gitops.dev/v1alpha1",
                                                        alias="apiVersion")
    kind: Literal["ImagePolicy"] = "ImagePolicy"
    metadata: Metadata
    spec: ImagePolicySpec

    @property
    def ref(self) -> str:
        """``namespace:name``: how setter markers (``{"$imagepolicy": "NS:NAME"}``) name it."""
        return f"{self.metadata.namespace}:{self.metadata.name}"


# -- ImageUpdateAutomation -----------------------------------------------------------------


class GitCheckoutRef(_Model):
    """``git.checkout.ref``: the branch to check out, edit and (by default) push to."""

    branch: str = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        from gitops.sources.git.url import valid_ref_name

        if not valid_ref_name(value):
            raise ValueError("not a valid branch name")
        return value


class GitCheckout(_Model):
    """``git.checkout``."""

    ref: GitCheckoutRef


class CommitAuthor(_Model):
    """``git.commit.author``: written into each commit as ``NAME <EMAIL>``, so neither may
    hold ``<``, ``>``, a line break or NUL (they would forge the commit's headers)."""

    name: str = Field(min_length=1)
    email: str = Field(min_length=1)

    @field_validator("name", "email")
    @classmethod
    def _one_identity(cls, value: str) -> str:
        if any(c in value for c in "<>\n\r\x00"):
            raise ValueError("a commit author's name or email must not hold '<', '>', a "
                             "line break or NUL")
        return value


class CommitSpec(_Model):
    """``git.commit``: author, message template, optional GPG signing key id."""

    author: CommitAuthor
    message_template: str | None = Field(
        default=None, alias="messageTemplate",
        description="the commit message; the default lists what changed",
    )
    signing_key: str | None = Field(
        default=None, alias="signingKey",
        description="a GPG key id in the local keyring; the commit is signed with it",
    )


class GitPush(_Model):
    """``git.push``: push to another branch than the one checked out (a pull-request flow)."""

    branch: str = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return GitCheckoutRef._branch(value)


class GitSpec(_Model):
    """``spec.git``: where the configuration lives and how commits are made."""

    url: str = Field(min_length=1, description="a Git source URL without @REF (git+https://…)")
    checkout: GitCheckout
    commit: CommitSpec
    push: GitPush | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from gitops.sources.git.url import parse_git_url

        try:
            parsed = parse_git_url(value)
        except InputError:
            raise ValueError("must be a Git source URL (git+https://, git+ssh://, git+file://, "
                             "git://)") from None
        if parsed.ref is not None or parsed.semver is not None:
            raise ValueError("must not name a ref (@REF or semver=): the branch is "
                             "git.checkout.ref.branch")
        return value

    @property
    def push_branch(self) -> str:
        """Where commits are pushed: ``push.branch``, else the checked-out branch."""
        return self.push.branch if self.push is not None else self.checkout.ref.branch

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (scrub(self.url) if key == "url" else value)


class UpdateSpec(_Model):
    """``spec.update``: which folder's setter markers are rewritten, and whether to pin digests."""

    strategy: Literal["Setters"] = "Setters"
    path: str = Field(default=".", min_length=1)
    pin_digest: bool = Field(default=False, alias="pinDigest",
                             description="write image:tag@sha256:… instead of image:tag")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        from gitops.sources.fragment import subpath

        return subpath(value) or "."


class AutomationSpec(_Model):
    """``spec`` of an ImageUpdateAutomation."""

    interval: Duration = Field(default="5m", gt=0, validate_default=True)
    git: GitSpec
    update: UpdateSpec = Field(default_factory=UpdateSpec)
    suspend: bool = False


class ImageUpdateAutomation(_Document):
    """``kind: ImageUpdateAutomation``: apply every ImagePolicy of its namespace to a Git branch."""

    api_version: Literal["gitops.dev/v1alpha1"] = Field(default="gitops.dev/v1alpha1",
                                                        alias="apiVersion")
    kind: Literal["ImageUpdateAutomation"] = "ImageUpdateAutomation"
    metadata: Metadata
    spec: AutomationSpec

    def policies(self, declared: Mapping[str, ImagePolicy] | tuple[ImagePolicy, ...]) \
            -> tuple[ImagePolicy, ...]:
        """The policies this automation applies: those of its namespace, in the given order."""
        values = declared.values() if isinstance(declared, Mapping) else declared
        return tuple(p for p in values if p.namespace == self.namespace)
