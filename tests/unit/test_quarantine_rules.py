"""The account's escalation rule (quarantine_rules.escalation): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mayfly.services.workers.quarantine_rules import (
    AccountQuarantine,
    Verdict,
    cooldown_seconds,
    decayed_strikes,
    escalation,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def rule(verdicts: list[Verdict], spent_before: datetime | None = None) -> list[str] | None:
    return escalation(verdicts, NOW, workers=3, window=3600, spent_before=spent_before)


def test_three_distinct_guilty_workers_within_the_window_quarantine_the_account() -> None:
    verdicts = [Verdict("a", ago(3000)), Verdict("b", ago(1000)), Verdict("c", ago(0))]
    assert rule(verdicts) == ["a", "b", "c"]


def test_fewer_distinct_names_do_not() -> None:
    assert rule([Verdict("a", ago(100)), Verdict("b", ago(0))]) is None
    # The same name again is the Worker rule's repeat (its cooldown doubles), not a new name.
    assert rule([Verdict("a", ago(2000)), Verdict("a", ago(1000)), Verdict("b", ago(0))]) is None


def test_verdicts_older_than_the_window_do_not_count() -> None:
    verdicts = [Verdict("a", ago(3601)), Verdict("b", ago(1000)), Verdict("c", ago(0))]
    assert rule(verdicts) is None


def test_verdicts_that_started_the_last_account_quarantine_are_spent() -> None:
    verdicts = [Verdict("a", ago(900)), Verdict("b", ago(800)), Verdict("c", ago(700))]
    # The last of them started the account's quarantine at the same instant: spent too.
    assert rule(verdicts, spent_before=ago(700)) is None
    assert rule([*verdicts, Verdict("d", ago(300)), Verdict("e", ago(0))], ago(700)) is None
    fresh = [*verdicts, Verdict("d", ago(300)), Verdict("e", ago(200)), Verdict("f", ago(0))]
    assert rule(fresh, spent_before=ago(600)) == ["d", "e", "f"]


def test_zero_turns_it_off() -> None:
    verdicts = [Verdict(name, ago(i)) for i, name in enumerate("abcdefgh")]
    assert escalation(verdicts, NOW, workers=0, window=3600) is None


def test_the_account_cooldown_doubles_and_decays_like_a_workers() -> None:
    previous = AccountQuarantine("acct", ("a", "b", "c"), "unresponsive", "", ago(700), ago(100), 2)
    assert decayed_strikes(previous, NOW, 3600) == 2
    assert decayed_strikes(previous, NOW + timedelta(seconds=3600), 3600) == 1
    assert [cooldown_seconds(n, 600, 86400) for n in (1, 2, 3, 8, 9)] == [
        600,
        1200,
        2400,
        76800,
        86400,
    ]


def test_the_reason_names_the_workers_and_the_json_says_until_when() -> None:
    q = AccountQuarantine(
        "acct", ("a", "b", "c"), "memory", "RSS", NOW, NOW + timedelta(seconds=600), 1
    )
    assert "3 of its Workers (a, b, c)" in q.reason
    shown = q.to_json(NOW)
    assert shown["scripts"] == ["a", "b", "c"]
    assert shown["seconds_left"] == 600
    assert q.is_active(NOW)
