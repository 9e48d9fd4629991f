"""Request options every verb shares: ``dryRun``, boolean flags, and the server's clock."""

from __future__ import annotations

from datetime import UTC, datetime

from gitops.testing.kube.status import bad_request

__all__ = ["Params", "dry_run", "now", "truthy"]

#: query parameters, first value of each
Params = dict[str, str]


def now() -> str:
    """RFC 3339 UTC, second precision, as the server writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def dry_run(params: Params) -> bool:
    """Whether ``dryRun=All`` was asked for; 400 for any other value."""
    value = params.get("dryRun")
    if value is None or value == "":
        return False
    if value != "All":
        raise bad_request(f'Invalid dryRun value "{value}": supported values: "All"')
    return True
