"""Cron expressions as Cloudflare's cron triggers read them: five fields, UTC.

minute (0-59), hour (0-23), day of month (1-31, `L` last day, `LW` last weekday, `15W` the
weekday nearest the 15th), month (1-12 or JAN-DEC), day of week (1-7 or SUN-SAT, 1 = Sunday;
`6L` the last Friday of the month, `2#1` its first Monday). Every field takes `*`, lists, ranges
and steps (`*/15`, `10-30/5`). When both day fields are restricted, a day matches either (as in
classic cron).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from mayfly.errors import ValidationError

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
# Cloudflare numbers the days of the week 1 (Sunday) to 7 (Saturday).
WEEKDAYS = {name: i + 1 for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
MAX_LENGTH = 100
# How far `next_after` looks: a date that comes at most once in four years (29 February) fits.
SEARCH_YEARS = 5
_SAMPLED_RUNS = 1500


class CronError(ValidationError):
    """A cron expression Mayfly cannot run (10021)."""


@dataclass(frozen=True)
class DaySpec:
    """The day-of-month and day-of-week rules, which need the month to be evaluated."""

    month_days: frozenset[int]
    last_day: bool = False
    last_weekday: bool = False
    nearest_weekdays: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 1 = Sunday
    last_of_weekday: frozenset[int] = frozenset()  # `6L`
    nth_weekday: frozenset[tuple[int, int]] = frozenset()  # `2#1` -> (2, 1)
    dom_any: bool = True
    dow_any: bool = True

    def matches(self, day: date) -> bool:
        dom = self._dom(day)
        dow = self._dow(day)
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow

    def _dom(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if day.day in self.month_days or (self.last_day and day.day == last):
            return True
        if self.last_weekday and day == _nearest_weekday(day.year, day.month, last):
            return True
        return any(
            day == _nearest_weekday(day.year, day.month, n)
            for n in self.nearest_weekdays
            if n <= last
        )

    def _dow(self, day: date) -> bool:
        weekday = (day.isoweekday() % 7) + 1  # Sunday -> 1
        if weekday in self.weekdays:
            return True
        last = calendar.monthrange(day.year, day.month)[1]
        if weekday in self.last_of_weekday and day.day + 7 > last:
            return True
        return (weekday, (day.day - 1) // 7 + 1) in self.nth_weekday


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    days: DaySpec

    def next_after(self, moment: datetime) -> datetime | None:
        """The first run strictly after `moment` (UTC, to the minute); None if there is none
        within SEARCH_YEARS."""
        t = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        horizon = t + timedelta(days=366 * SEARCH_YEARS)
        while t < horizon:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif not self.days.matches(t.date()):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None

    def shortest_interval(self, start: datetime) -> float | None:
        """The shortest gap between runs, in seconds, over the runs that follow `start`."""
        shortest: float | None = None
        previous = self.next_after(start)
        for _ in range(_SAMPLED_RUNS):
            if previous is None:
                break
            following = self.next_after(previous)
            if following is None:
                break
            gap = (following - previous).total_seconds()
            shortest = gap if shortest is None else min(shortest, gap)
            if shortest <= 60:
                break
            previous = following
        return shortest


def parse(expression: object) -> Cron:
    """Raises CronError (10021) saying what is wrong."""
    if not isinstance(expression, str):
        raise CronError(f"A cron expression must be a string, not {expression!r}.")
    text = expression.strip()
    if not text or len(text) > MAX_LENGTH:
        raise CronError(f"The cron expression {expression!r} is empty or too long.")
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"The cron expression {text!r} must have 5 fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}."
        )
    minute, hour, dom, month, dow = fields
    cron = Cron(
        expression=" ".join(fields),
        minutes=_values(text, "minute", minute, 0, 59, {}),
        hours=_values(text, "hour", hour, 0, 23, {}),
        months=_values(text, "month", month, 1, 12, MONTHS),
        days=_days(text, dom, dow),
    )
    if cron.next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None:
        raise CronError(f"The cron expression {text!r} never runs.")
    return cron


def _values(
    text: str, name: str, field: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    out: set[int] = set()
    for part in field.split(","):
        out.update(_part(text, name, part, low, high, names))
    return frozenset(out)


def _part(text: str, name: str, part: str, low: int, high: int, names: dict[str, int]) -> range:
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{text!r}: the step {step_text!r} of the {name} field is not valid.")
        step = int(step_text)
    if base == "*":
        return range(low, high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _number(text, name, first_text, low, high, names)
    last = _number(text, name, last_text, low, high, names) if dash else (high if slash else first)
    if last < first:
        raise CronError(f"{text!r}: the range {base!r} of the {name} field ends before it starts.")
    return range(first, last + 1, step)


def _number(text: str, name: str, token: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(token.lower()) if not token.isdigit() else int(token)
    if value is None or not low <= value <= high:
        raise CronError(
            f"{text!r}: {token!r} is not a valid {name} ({low}-{high}"
            + (", or a three-letter name" if names else "")
            + ")."
        )
    return value


_NEAREST = re.compile(r"^(\d{1,2})W$", re.IGNORECASE)
_LAST_OF = re.compile(r"^([A-Za-z]{3}|\d)L$")
_NTH = re.compile(r"^([A-Za-z]{3}|\d)#(\d)$")


def _days(text: str, dom: str, dow: str) -> DaySpec:
    month_days: set[int] = set()
    nearest: set[int] = set()
    last_day = last_weekday = False
    dom_any = dom in ("*", "?")
    if not dom_any:
        for part in dom.split(","):
            upper = part.upper()
            if upper == "L":
                last_day = True
            elif upper == "LW":
                last_weekday = True
            elif match := _NEAREST.match(part):
                nearest.add(_number(text, "day of month", match.group(1), 1, 31, {}))
            else:
                month_days.update(_part(text, "day of month", part, 1, 31, {}))
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth: set[tuple[int, int]] = set()
    dow_any = dow in ("*", "?")
    if not dow_any:
        for part in dow.split(","):
            if match := _LAST_OF.match(part):
                last_of.add(_number(text, "day of week", match.group(1), 1, 7, WEEKDAYS))
            elif match := _NTH.match(part):
                weekday = _number(text, "day of week", match.group(1), 1, 7, WEEKDAYS)
                which = int(match.group(2))
                if not 1 <= which <= 5:
                    raise CronError(f"{text!r}: {part!r} names no week of a month (1-5).")
                nth.add((weekday, which))
            elif part.upper() == "L":
                last_of.add(7)  # `L` alone: the last day of the week, Saturday
            else:
                weekdays.update(_part(text, "day of week", part, 1, 7, WEEKDAYS))
    return DaySpec(
        month_days=frozenset(month_days),
        last_day=last_day,
        last_weekday=last_weekday,
        nearest_weekdays=frozenset(nearest),
        weekdays=frozenset(weekdays),
        last_of_weekday=frozenset(last_of),
        nth_weekday=frozenset(nth),
        dom_any=dom_any,
        dow_any=dow_any,
    )


def _nearest_weekday(year: int, month: int, day: int) -> date:
    """The weekday (Monday-Friday) nearest the day, within the same month."""
    target = date(year, month, day)
    last = calendar.monthrange(year, month)[1]
    if target.weekday() == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return target - timedelta(days=1) if day > 1 else target + timedelta(days=2)
    if target.weekday() == 6:  # Sunday: the Monday after, or the Friday before the last day
        return target + timedelta(days=1) if day < last else target - timedelta(days=2)
    return target


def _first_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0)
