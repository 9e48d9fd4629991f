"""Operator log lines: JSON with app/revision/reason fields, or text; never a crash."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gitops.operator.logs import JsonFormatter, TextFormatter, configure_logging

LOG = logging.getLogger("gitops.operator.test")


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_msg_and_the_operator_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    LOG.info("synced %d objects", 3,
             extra={"reason": "SyncSucceeded", "app": "gitops/shop", "revision": "main@sha1:abc"})
    (line,) = lines(stream)
    assert list(line) == ["time", "level", "logger", "msg", "app", "revision", "reason"]
    assert line["level"] == "info" and line["logger"] == "gitops.operator.test"
    assert line["msg"] == "synced 3 objects"
    assert (line["app"], line["revision"], line["reason"]) == (
        "gitops/shop", "main@sha1:abc", "SyncSucceeded")
    assert line["time"].endswith("Z") and line["time"][10] == "T"
    assert len(line["time"]) == len("2024-05-01T12:00:00.000Z")


def test_an_exception_goes_under_error() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        raise RuntimeError("apply failed")
    except RuntimeError:
        LOG.exception("sync failed", extra={"app": "gitops/shop"})
    (line,) = lines(stream)
    assert line["level"] == "error" and line["msg"] == "sync failed"
    assert "RuntimeError: apply failed" in line["error"]
    assert "Traceback" in line["error"]


def test_other_extras_follow_and_unserializable_ones_never_crash() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no")

    circular: dict[str, Any] = {}
    circular["self"] = circular
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    LOG.warning("odd values", extra={"app": "a/b", "zeta": {1, 2}, "blob": b"\x00",
                                     "weird": Unprintable(), "count": 2})
    LOG.warning("circular", extra={"loop": circular})
    LOG.warning("keys", extra={"mapping": {(1, 2): "tuple key"}})
    odd, loop, keys = lines(stream)
    assert list(odd)[4:] == ["app", "blob", "count", "weird", "zeta"]
    assert odd["count"] == 2 and odd["blob"] == "b'\\x00'"
    assert odd["weird"] == "<unprintable Unprintable>"
    assert "self" in loop["loop"] and keys["mapping"] == "{(1, 2): 'tuple key'}"


def test_a_message_whose_arguments_do_not_fit_is_kept() -> None:
    # formatted directly: pytest's own capturing handler would fail on this record first
    record = LOG.makeRecord(LOG.name, logging.INFO, __file__, 1, "%d objects",
                            ("not a number",), None)
    assert json.loads(JsonFormatter().format(record))["msg"] == "%d objects ('not a number',)"
    assert TextFormatter().format(record).endswith(": %d objects ('not a number',)")


def test_reserved_names_given_as_extras_do_not_replace_the_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    LOG.info("hello", extra={"time": "yesterday", "level": "loud"})
    (line,) = lines(stream)
    assert line["level"] == "info" and line["time"].endswith("Z")
    assert (line["extra.time"], line["extra.level"]) == ("yesterday", "loud")


def test_text_lines_show_the_fields_as_key_value() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    LOG.warning("drift detected", extra={"app": "gitops/shop", "reason": "DriftDetected",
                                         "revision": "main@sha1:abc", "note": "two words"})
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip("\n").split(": drift detected ")[1] == (
        'app=gitops/shop revision=main@sha1:abc reason=DriftDetected note="two words"')
    assert " warning " in text and text[:4].isdigit()


def test_text_exceptions_follow_on_their_own_lines() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    try:
        raise KeyError("x")
    except KeyError:
        LOG.error("failed", exc_info=True)
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("gitops.operator.test: failed")
    assert rest[0].startswith("Traceback") and rest[-1] == "KeyError: 'x'"


def test_the_level_filters_and_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", level="warning", stream=first)
    LOG.info("hidden")
    LOG.warning("shown")
    configure_logging("text", level="DEBUG", stream=second)
    LOG.debug("debug now")
    assert [line["msg"] for line in lines(first)] == ["shown"]
    assert "debug now" in second.getvalue()
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
            and h.stream in (first, second)]
    assert len(ours) == 1


def test_the_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    LOG.error("to stderr")
    captured = capsys.readouterr()
    assert captured.out == "" and json.loads(captured.err)["msg"] == "to stderr"


@pytest.mark.parametrize(("log_format", "level", "message"), [
    ("yaml", "info", "expected 'text' or 'json'"),
    ("json", "verbose", "expected one of debug, info, warning"),
])
def test_unknown_formats_and_levels_are_refused(log_format: str, level: str,
                                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(log_format, level)  # type: ignore[arg-type]
