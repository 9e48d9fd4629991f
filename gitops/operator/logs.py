"""Log lines for the operator: human text or one JSON object per line (``--log-format``).

:func:`configure_logging` installs one handler on the root logger. JSON lines carry
``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger`` and ``msg``, then the
fields a caller passed with ``extra=`` — ``app``, ``revision`` and ``reason`` first —
and, for a logged exception, its traceback under ``error``. Text lines show the same
fields as ``key=value`` after the message. Formatting never raises: a value JSON cannot
hold is written as its ``str()`` (or a placeholder when even that fails), and a message
whose ``%`` arguments do not fit is written as given.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = ["FIELDS", "LEVELS", "JsonFormatter", "LogFormat", "TextFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]

#: The fields the operator passes with ``extra=``, shown first and in this order.
FIELDS = ("app", "revision", "reason")
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_MARK = "_gitops_operator_handler"


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the format: keep both, never crash
        return f"{_safe_str(record.msg)} {_safe_str(record.args)}"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    """The ``extra=`` fields of ``record``: :data:`FIELDS` first, the others sorted."""
    found = {key: value for key, value in record.__dict__.items()
             if key not in _STANDARD and not key.startswith("_")}
    first = [(key, found.pop(key)) for key in FIELDS if key in found]
    return first + sorted(found.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        for key, value in _extras(record):
            document[key if key not in document else f"extra.{key}"] = value
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["error"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(document, ensure_ascii=False, default=_safe_str)
        except (TypeError, ValueError):  # a circular value, a key JSON cannot hold
            safe = {key: value if isinstance(value, str) else _safe_str(value)
                    for key, value in document.items()}
            return json.dumps(safe, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE key=value ...``, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname.lower():<7} {record.name}: {_message(record)}"
        for key, value in _extras(record):
            line += f" {key}={_text_value(value)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text_value(value: object) -> str:
    text = _safe_str(value)
    if not text or any(c.isspace() or c in "\"=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def configure_logging(log_format: LogFormat, level: str = "info",
                      stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) as text or JSON.

    Replaces the handler an earlier call installed, so calling it again reconfigures.
    Returns the handler. Raises ValueError naming the accepted values for an unknown
    format or level.
    """
    if log_format not in ("text", "json"):
        raise ValueError(f"log format {log_format!r}: expected 'text' or 'json'")
    number = LEVELS.get(level.lower())
    if number is None:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    return handler
