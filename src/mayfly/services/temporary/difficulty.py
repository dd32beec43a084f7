"""Proof of work that adapts to provisioning pressure (issue 12, item 5).

Each challenge's work is chosen when it is issued: the configured minimum when the platform is
idle, rising linearly to the configured maximum (`pow_k` × `pow_g`) as accounts are created,
platform-wide or from the asking address group, within `pow_pressure_window` seconds. `k` stays
`pow_k` (the checkpoints a solution carries); `g` moves. Work never exceeds what wrangler accepts
(k × g ≤ 64 M, spec §4.3). Pressure is kept in memory by each control plane, like the limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mayfly.services.core.ratelimit import GLOBAL, SlidingWindowLimiter
from mayfly.settings import Settings

WRANGLER_MAX_WORK = 64_000_000  # wrangler refuses a challenge with k × g above this


@dataclass(frozen=True)
class Difficulty:
    k: int
    g: int
    pressure: float  # 0 idle … 1 the maximum

    @property
    def work(self) -> int:
        return self.k * self.g


class AdaptiveDifficulty:
    def __init__(self, settings: Settings):
        self.k = max(1, settings.pow_k)
        self.max_g = max(1, min(settings.pow_g, WRANGLER_MAX_WORK // self.k))
        floor = math.ceil(max(1, settings.pow_min_work) / self.k)
        self.min_g = self.max_g if not settings.pow_adaptive else max(1, min(floor, self.max_g))
        window = max(1, settings.pow_pressure_window)
        # A limiter keeps at most `limit` recent hits: exactly what saturation needs to be seen.
        self.platform_recent = SlidingWindowLimiter(
            settings.pow_busy_platform, window, "accounts created platform-wide"
        )
        self.address_recent = SlidingWindowLimiter(
            settings.pow_busy_address, window, "accounts created from this address"
        )

    @property
    def limiters(self) -> list[SlidingWindowLimiter]:
        return [self.platform_recent, self.address_recent]

    def record(self, client: str | None, now: float) -> None:
        """One account was provisioned (for client; None: it counts platform-wide only)."""
        self.platform_recent.record(GLOBAL, now)
        if client is not None:
            self.address_recent.record(client, now)

    def maximum(self) -> Difficulty:
        """The most work a challenge asks (`pow_k` × `pow_g`, within wrangler's bound), whatever
        the pressure: what a tainted address pays (taints.py)."""
        return Difficulty(k=self.k, g=self.max_g, pressure=1.0)

    def difficulty(self, client: str | None = None, *, now: float) -> Difficulty:
        """The work a challenge issued now would ask of client (None: platform-wide only)."""
        pressure = _share(self.platform_recent, GLOBAL, now)
        if client is not None:
            pressure = max(pressure, _share(self.address_recent, client, now))
        g = self.min_g + round((self.max_g - self.min_g) * pressure)
        return Difficulty(k=self.k, g=g, pressure=pressure)


def _share(recent: SlidingWindowLimiter, key: str, now: float) -> float:
    return min(1.0, recent.count(key, now) / recent.limit)
