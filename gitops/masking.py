"""Masking of Secret values for anything shown to a human: diffs, patches, CLI output.

Every value under a Secret's ``data`` and ``stringData`` is replaced by a mask, and
so is the ``kubectl.kubernetes.io/last-applied-configuration`` annotation (it holds the
whole Secret in clear text). Masks follow Argo CD: a run of ``+``. A mask says only
whether a value is set and whether it changed, never anything about the value (``null``
and ``""`` are shown as they are, so an empty value never looks like a set one): this module must never emit a
value, its base64, its length or any hash of it (a short hash of a low-entropy secret is
brute-forced in seconds), and never mutate its input.

Paired masking (for diffs): a value equal on both sides gets :data:`MASK` on both; a
desired value that differs from the live one gets :data:`MASK_CHANGED`, one ``+``
longer, so a unified diff shows the line as changed.

Free text (a server's error message, an exception from a plugin) cannot be masked by
structure: :func:`secret_values` lists what to look for and :func:`redact_values`
masks it. This module imports nothing from the rest of gitops.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "MASK",
    "MASK_CHANGED",
    "SECRET_SECTIONS",
    "is_secret",
    "mask_patch",
    "mask_secret",
    "mask_secret_pair",
    "redact_values",
    "secret_values",
]

#: The mask of a live value, of an unchanged desired value, and of a value in a patch.
MASK = "++++++++"
#: The mask of a desired value that differs from its live counterpart.
MASK_CHANGED = "+++++++++"
#: Written by ``kubectl apply``; for a Secret it contains every value in clear text.
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
#: The fields of a Secret whose values are secret.
SECRET_SECTIONS = ("data", "stringData")

# JSON-pointer tokens of everything secret in a Secret; "*" is any one key.
_SECRET_POINTERS: tuple[tuple[str, ...], ...] = (
    ("data", "*"),
    ("stringData", "*"),
    ("metadata", "annotations", LAST_APPLIED_ANNOTATION),
)


def is_secret(manifest: Mapping[str, Any]) -> bool:
    """True for ``kind: Secret`` of any group: hiding too much is safe, showing a secret is not."""
    return manifest.get("kind") == "Secret"


def mask_secret(manifest: dict[str, Any], *, secret: bool | None = None) -> dict[str, Any]:
    """Return ``manifest`` with every secret value replaced by :data:`MASK`.

    For a Secret, a new dict (unmasked subtrees are shared with ``manifest``, not
    copied); any other manifest is returned itself, as there is nothing to mask.
    ``secret`` overrides :func:`is_secret` (say, when the object's key names a Secret).
    """
    if not (is_secret(manifest) if secret is None else secret):
        return manifest
    masked: dict[str, Any] = _mask_tree(manifest, ())
    return masked


def mask_secret_pair(
    desired: dict[str, Any], live: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mask a desired and a live Secret so that equal values get equal masks.

    Returns masked copies ``(desired, live)``. Live values, desired values equal to
    live and desired-only values get :data:`MASK`; desired values that differ from
    live get :data:`MASK_CHANGED`. Values are compared as given (normalize first).
    """
    masked_desired, masked_live = mask_secret(desired), mask_secret(live)
    for section in SECRET_SECTIONS:
        want, have = desired.get(section), live.get(section)
        if section not in desired or section not in live or want == have:
            continue
        if not isinstance(want, Mapping) or not isinstance(have, Mapping):
            masked_desired[section] = MASK_CHANGED
            continue
        masked_desired[section] = {
            name: _mask_tree(value, (section, str(name)))
            if value is None or value == "" or name not in have or have[name] == value
            else MASK_CHANGED
            for name, value in want.items()
        }
    return masked_desired, masked_live


def mask_patch(ops: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Mask the values of RFC 6902 operations meant for a Secret.

    Any value at or below ``/data/*``, ``/stringData/*`` or the last-applied
    annotation becomes :data:`MASK`; a value above them (``/data``, ``/metadata``, the
    whole object) is copied with those parts masked. Paths are kept.
    """
    masked = []
    for op in ops:
        new = dict(op)
        if "value" in op:
            new["value"] = _mask_tree(op["value"], _pointer_tokens(str(op.get("path", ""))))
        masked.append(new)
    return tuple(masked)


def _pointer_tokens(pointer: str) -> tuple[str, ...]:
    if not pointer:
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _mask_tree(value: Any, at: tuple[str, ...]) -> Any:
    """Copy ``value`` (found at pointer tokens ``at``) with its secret parts masked.

    ``null`` and ``""`` are shown as they are: whether a value is set is not secret,
    and hiding it would make an empty value look like a set one.
    """
    if value is None or value == "":
        return value
    if any(_covers(pattern, at) for pattern in _SECRET_POINTERS):
        return MASK
    if not any(_covers(at, pattern) for pattern in _SECRET_POINTERS):
        return value
    if isinstance(value, Mapping):
        return {key: _mask_tree(item, (*at, str(key))) for key, item in value.items()}
    return MASK  # a malformed value where secrets belong: hide it whole


def _covers(prefix: tuple[str, ...], tokens: tuple[str, ...]) -> bool:
    """True when ``prefix`` (which may hold ``*``) is a prefix of ``tokens``."""
    if len(prefix) > len(tokens):
        return False
    return all(p == "*" or t == "*" or p == t for p, t in zip(prefix, tokens, strict=False))


def secret_values(manifest: Mapping[str, Any]) -> list[str]:
    """Every value of a Secret as text may show it, longest first; [] for other kinds.

    Each value of ``data`` and ``stringData``, with its base64 (for ``stringData``) or
    decoded (for ``data``) form, and the last-applied annotation: what a server or a
    plugin could echo in an error message.
    """
    if not isinstance(manifest, Mapping) or not is_secret(manifest):
        return []
    values: set[str] = set()
    for section in SECRET_SECTIONS:
        items = manifest.get(section)
        if not isinstance(items, Mapping):
            continue
        for value in items.values():
            if not isinstance(value, str) or not value:
                continue
            values.add(value)
            if section == "stringData":
                values.add(base64.b64encode(value.encode()).decode("ascii"))
            else:
                decoded = _b64decode(value)
                if decoded:
                    values.add(decoded)
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    last_applied = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(
        annotations, Mapping) else None
    if isinstance(last_applied, str) and last_applied:
        values.add(last_applied)
    # as a JSON string quotes them (a server's error body, a JSON log line)
    values.update(json.dumps(v, ensure_ascii=ascii)[1:-1] for v in list(values)
                  for ascii in (True, False))
    return sorted(values, key=len, reverse=True)


def redact_values(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by :data:`MASK`.

    A value of 4 characters or more is masked wherever it appears; a shorter one only
    where it stands quoted (``"42"``), so that masking a PIN does not garble every
    number in the message. Give ``values`` longest first (as :func:`secret_values`
    does), so that a value containing another is masked whole.
    """
    for value in values:
        if len(value) >= 4:
            text = text.replace(value, MASK)
        elif value:
            text = re.sub(rf"""(["']){re.escape(value)}\1""", rf"\1{MASK}\1", text)
    return text


def _b64decode(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
