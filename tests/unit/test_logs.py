"""The log formats of `mayfly serve`."""

from __future__ import annotations

import json
import logging

import pytest

from mayfly.cli.logs import JsonFormatter, TextFormatter
from mayfly.settings import Settings


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("mayfly.test", logging.WARNING, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_json_is_one_object_with_the_extra_fields() -> None:
    line = JsonFormatter().format(record("shard %d down", 3, shard="s3", pid=42))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "mayfly.test"
    assert entry["message"] == "shard 3 down"
    assert entry["shard"] == "s3" and entry["pid"] == 42
    assert entry["time"].endswith("+00:00")


def test_a_token_that_reaches_a_log_is_cut() -> None:
    token = "mft_" + "A1b2" * 11
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record("got %s", token))
        assert token not in line and "mft_[redacted]" in line


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")
