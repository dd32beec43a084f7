"""The one sliding-window limiter: counting, retry times, pruning, bounded memory; address groups."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mayfly.errors import RateLimited
from mayfly.services.core.ratelimit import SlidingWindowLimiter, address_group, client_address


def test_hits_past_the_limit_wait_until_the_oldest_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(2, 60, "things")
    limiter.hit("a", 100.0)
    limiter.hit("a", 130.0)
    with pytest.raises(RateLimited) as refused:
        limiter.hit("a", 140.0)
    assert refused.value.retry_after == 20  # the hit at 100 leaves the window at 160
    assert refused.value.code == 10429
    limiter.hit("b", 140.0)  # other keys are untouched
    limiter.hit("a", 160.5)
    with pytest.raises(RateLimited):
        limiter.hit("a", 161.0)


def test_failures_are_recorded_without_refusal_and_reset() -> None:
    limiter = SlidingWindowLimiter(3, 900, "failed log-ins")
    for t in range(5):
        limiter.record("pair", 1000.0 + t)
    # Only the last `limit` failures are kept: the third most recent (1002) decides.
    assert limiter.retry_after("pair", 1010.0) == 1002 + 900 - 1010
    limiter.reset("pair")
    assert limiter.retry_after("pair", 1010.0) == 0


def test_keys_whose_window_passed_are_pruned() -> None:
    limiter = SlidingWindowLimiter(5, 60, "things")
    limiter.hit("old", 0.0)
    limiter.hit("recent", 50.0)
    limiter.hit("old-again", 10.0)  # hit later, though earlier in time: order is by last hit
    assert limiter.prune(65.0) == 1  # "old"; stops at "recent", still in its window
    assert len(limiter) == 2
    assert limiter.prune(200.0) == 2
    assert len(limiter) == 0


def test_memory_is_bounded_by_max_keys_and_limit() -> None:
    limiter = SlidingWindowLimiter(3, 3600, "things", max_keys=100)
    for i in range(1000):
        limiter.record(f"key{i}", float(i))
    assert len(limiter) == 100
    for _ in range(50):
        limiter.record("busy", 2000.0)
    assert len(limiter._hits["busy"]) == 3
    # The most recently hit keys stay; the least recently hit are forgotten first.
    assert limiter.retry_after("key999", 1000.0) == 0 and "key999" in limiter._hits
    assert "key0" not in limiter._hits


def test_keys_are_bounded_in_length() -> None:
    limiter = SlidingWindowLimiter(1, 60, "things")
    limiter.hit("x" * 10_000, 0.0)
    with pytest.raises(RateLimited):
        limiter.hit("x" * 10_000, 1.0)
    assert max(len(k) for k in limiter._hits) <= 320


@pytest.mark.parametrize(
    ("host", "group"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
        ("", "unknown"),
    ],
)
def test_addresses_are_grouped_ipv6_by_its_64(host: str, group: str) -> None:
    assert address_group(host) == group


def test_client_address_reads_the_connection_peer() -> None:
    peer = SimpleNamespace(client=SimpleNamespace(host="2001:db8::5", port=1))
    assert client_address(peer) == "2001:db8::/64"
    assert client_address(SimpleNamespace(client=None)) == "unknown"
