"""The rule of tainted addresses (services/temporary/taints.py), and the two pieces it needs from
the proof of work and the limiter."""

from __future__ import annotations

from pathlib import Path

from mayfly.services.core.ratelimit import SlidingWindowLimiter
from mayfly.services.temporary.difficulty import AdaptiveDifficulty
from mayfly.services.temporary.taints import taints_address
from tests.conftest import make_settings


def test_only_an_unclaimed_temporary_account_with_an_address_taints_it() -> None:
    assert taints_address("temporary", claimed=False, address="203.0.113.7")
    assert taints_address("temporary", claimed=False, address="2001:db8:1:2::/64")
    # A human answers for a claimed account (it became permanent, or is being claimed).
    assert not taints_address("permanent", claimed=True, address="203.0.113.7")
    assert not taints_address("temporary", claimed=True, address="203.0.113.7")
    # An operator's or a user's permanent account, and accounts from before addresses were kept.
    assert not taints_address("permanent", claimed=False, address=None)
    assert not taints_address("temporary", claimed=False, address=None)
    assert not taints_address("temporary", claimed=False, address="")


def test_a_tainted_address_pays_the_maximum_work_whatever_the_pressure(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, pow_k=8, pow_g=400, pow_min_work=80)
    adaptive = AdaptiveDifficulty(settings)
    assert adaptive.difficulty("203.0.113.7", now=0).work == 80  # idle
    assert adaptive.maximum().work == 8 * 400
    # Never beyond what wrangler accepts.
    huge = AdaptiveDifficulty(make_settings(tmp_path, pow_k=1000, pow_g=1_000_000))
    assert huge.maximum().work == 64_000_000


def test_the_allowance_under_a_lower_limit_counts_the_hits_already_made() -> None:
    limiter = SlidingWindowLimiter(20, 3600, "temporary accounts from this address")
    limiter.hit("a", 0)
    assert limiter.retry_after("a", 10, limit=2) == 0
    limiter.hit("a", 20)
    assert limiter.retry_after("a", 30, limit=2) == 3600 - 30  # the older of the two must age
    assert limiter.retry_after("a", 30) == 0  # its own limit is untouched
    assert limiter.retry_after("b", 30, limit=2) == 0
    assert limiter.retry_after("a", 3600, limit=2) == 0
