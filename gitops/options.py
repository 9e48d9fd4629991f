"""One options model per plugin, validated once, from URL query and keyword arguments alike.

Each source and target plugin declares ``Options``, a :class:`PluginOptions` subclass
(pydantic). The registry (and ``Plugin.from_url``) merges what the plugin reads from its
URL (:meth:`url_options`) with the caller's keyword arguments (keywords win), validates
the result once here, and hands the plugin a typed, frozen options object. A typo in an
option name is an error naming the URL, never silently ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError

from gitops.errors import InvalidURLError

__all__ = ["PluginOptions", "opened_with_key", "query_options", "validate_options"]


class PluginOptions(BaseModel):
    """Base of every plugin's options model: frozen, unknown names refused.

    ``populate_by_name`` lets URL query keys use the field's alias (``insecure-tls``)
    while Python callers use the field name (``insecure_tls``).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True
    )


OptionsT = TypeVar("OptionsT", bound=PluginOptions)


def validate_options(model: type[OptionsT], url: str, values: Mapping[str, Any]) -> OptionsT:
    """Validate ``values`` into ``model``; InvalidURLError naming ``url`` and each problem.

    ``url`` must already be credential-free; option values are never quoted, since
    they may be secrets (a token, a password).
    """
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"option {'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}" for e in exc.errors()
        )
        if any(e["type"] == "extra_forbidden" for e in exc.errors()):
            problems += f" (known options: {', '.join(model.model_fields) or 'none'})"
        raise InvalidURLError(url, problems) from None


def query_options(query: str) -> dict[str, str]:
    """``a=1&b=x`` as a dict (the last value of a repeated name wins); ``""`` gives ``{}``."""
    return dict(parse_qsl(query, keep_blank_values=True))


_KEY = os.urandom(32)  # per process: a key cannot be used to guess the credentials in it


def _plain(value: Any) -> Any:
    """A value JSON cannot encode, as text; a secret (``SecretStr``) as its value, since
    its ``repr`` is the same mask for any password."""
    secret = getattr(value, "get_secret_value", None)
    return secret() if callable(secret) else repr(value)


def opened_with_key(url: str, options: Mapping[str, Any]) -> str:
    """A key for a plugin opened on ``url`` with ``options``, for caches of open plugins:
    equal for equal inputs, different for different credentials (``SecretStr`` values
    compared by their value), and showing nothing of them (an HMAC with a per-process
    key)."""
    text = json.dumps([url, dict(options)], sort_keys=True, default=_plain)
    return hmac.new(_KEY, text.encode(), hashlib.sha256).hexdigest()
