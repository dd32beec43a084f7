"""Cron expressions as Cloudflare's cron triggers read them (mayfly/cron.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mayfly import cron

START = datetime(2026, 12, 7, 5, 30, 20, tzinfo=UTC)  # a Monday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", START, at(2026, 12, 7, 5, 31)),
        ("*/15 * * * *", START, at(2026, 12, 7, 5, 45)),
        ("0 * * * *", START, at(2026, 12, 7, 6, 0)),
        ("10-30/10 4 * * *", START, at(2026, 12, 8, 4, 10)),
        ("0 17 * * sun", START, at(2026, 12, 13, 17, 0)),
        ("0 17 * * 1", START, at(2026, 12, 13, 17, 0)),  # 1 = Sunday, as Cloudflare counts
        ("10 7 * * mon-fri", at(2026, 12, 11, 8, 0), at(2026, 12, 14, 7, 10)),
        ("10 7 * * 2-6", at(2026, 12, 11, 8, 0), at(2026, 12, 14, 7, 10)),
        ("0 15 1 * *", START, at(2027, 1, 1, 15, 0)),
        ("0 18 * * 6L", START, at(2026, 12, 25, 18, 0)),  # the last Friday
        ("0 18 * * friL", START, at(2026, 12, 25, 18, 0)),
        ("59 23 LW * *", START, at(2026, 12, 31, 23, 59)),  # the last weekday: a Thursday
        ("0 0 L * *", at(2027, 2, 1), at(2027, 2, 28, 0, 0)),
        ("0 0 15W * *", at(2027, 5, 1), at(2027, 5, 14, 0, 0)),  # the 15th is a Saturday
        ("0 9 * * 2#1", START, at(2026, 12, 7, 9, 0)),  # the first Monday: today
        ("0 0 1 jan *", START, at(2027, 1, 1, 0, 0)),
        ("0 0 29 2 *", START, at(2028, 2, 29, 0, 0)),
        ("0 12 13 * 6", START, at(2026, 12, 11, 12, 0)),  # day of month OR Friday
    ],
)
def test_next_run(expression: str, after: datetime, expected: datetime) -> None:
    assert cron.parse(expression).next_after(after) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "* * * * 0",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "* * * * 2#6",
        "0 0 31 2 *",  # never
        "@daily",
        None,
        7,
    ],
)
def test_bad_expressions_are_10021(expression: object) -> None:
    with pytest.raises(cron.CronError) as raised:
        cron.parse(expression)
    assert raised.value.code == 10021


def test_shortest_interval() -> None:
    assert cron.parse("* * * * *").shortest_interval(START) == 60
    assert cron.parse("*/5 * * * *").shortest_interval(START) == 300
    assert cron.parse("0,1 3 * * *").shortest_interval(START) == 60
    assert cron.parse("0 */6 * * *").shortest_interval(START) == 6 * 3600


def test_the_expression_is_normalised() -> None:
    assert cron.parse("  */5   *  * * * ").expression == "*/5 * * * *"
