"""Counts what the fuzz run sent and saw, printed at the end of the pytest run (tests/conftest.py's
SUMMARY, so that a parallel run prints them too)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from tests.conftest import SUMMARY


@dataclass
class FuzzStats:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_caller: Counter[str] = field(default_factory=Counter)
    detail: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def record(self, operation: str, caller: str, status: int) -> None:
        self.operations.add(operation)
        self.requests += 1
        self.statuses[status] += 1
        self.by_caller[caller] += 1
        self.detail[(operation, caller, status)] += 1

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        callers = ", ".join(f"{c}: {n}" for c, n in sorted(self.by_caller.items()))
        return (
            f"fuzz: {len(self.operations)} operations, {self.requests} requests "
            f"({callers}); statuses {statuses}"
        )


FUZZ_STATS = FuzzStats()


def pytest_sessionfinish() -> None:
    if FUZZ_STATS.requests:
        SUMMARY.append(FUZZ_STATS.summary())
        if os.environ.get("MAYFLY_FUZZ_VERBOSE"):
            for (operation, caller, status), n in sorted(FUZZ_STATS.detail.items()):
                SUMMARY.append(f"  {operation} {caller} {status}: {n}")
