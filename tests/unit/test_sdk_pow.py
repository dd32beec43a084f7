"""The SDK's proof-of-work solver against the server's verifier (spec §4.3)."""

from __future__ import annotations

import base64

import pytest

from mayfly.sdk.errors import ChallengeUnsupported
from mayfly.sdk.pow import MAX_ITERATIONS, check_challenge, solve, solve_challenge
from mayfly.services.core.crypto import Crypto
from mayfly.services.temporary import pow as server_pow
from tests import pow_solver


def test_the_server_accepts_the_sdk_solution() -> None:
    from datetime import UTC, datetime

    crypto = Crypto(b"k" * 32)
    token, issued = server_pow.issue(crypto, 12, 40, datetime.now(UTC), 60)
    challenge = check_challenge(
        {"challengeToken": token, "seed": server_pow.b64url(issued.seed), "k": 12, "g": 40}
    )
    solution = solve_challenge(challenge)
    server_pow.verify(issued, solution, samples=100)  # checks every segment
    assert len(base64.b64decode(solution)) == 32 * 13


def test_solution_matches_the_reference_chain() -> None:
    assert solve(b"s" * 32, 3, 5) == pow_solver.solve(b"s" * 32, 3, 5)


def test_progress_is_reported_per_checkpoint() -> None:
    seen: list[tuple[int, int]] = []
    solve(b"s" * 32, 4, 2, lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


SEED = base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("=")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"seed": SEED, "k": 1, "g": 1}, "missing required fields"),
        ("not an object", "missing required fields"),
        ({"challengeToken": "t", "seed": SEED, "k": 0, "g": 1}, "positive integers"),
        ({"challengeToken": "t", "seed": SEED, "k": True, "g": 1}, "positive integers"),
        ({"challengeToken": "t", "seed": SEED, "k": 1.5, "g": 1}, "positive integers"),
        ({"challengeToken": "t", "seed": SEED, "k": MAX_ITERATIONS, "g": 2}, "positive integers"),
        ({"challengeToken": "t", "seed": "c2hvcnQ", "k": 1, "g": 1}, "must be 32"),
        ({"challengeToken": 3, "seed": SEED, "k": 1, "g": 1}, "malformed"),
    ],
)
def test_unacceptable_challenges(raw: object, needle: str) -> None:
    with pytest.raises(ChallengeUnsupported, match=needle):
        check_challenge(raw)


def test_terms_from_the_challenge_are_kept() -> None:
    challenge = check_challenge(
        {
            "challengeToken": "t",
            "seed": SEED,
            "k": 1,
            "g": 1,
            "termsOfService": "https://x/terms",
            "privacyPolicy": "https://x/privacy",
        }
    )
    assert (challenge.terms_url, challenge.privacy_url) == ("https://x/terms", "https://x/privacy")


def test_the_terms_notice_links_only_what_the_server_named() -> None:
    from mayfly.sdk.provisioning import terms_notice

    bare = check_challenge({"challengeToken": "t", "seed": SEED, "k": 1, "g": 1})
    assert "http" not in terms_notice(bare)
    named = check_challenge(
        {
            "challengeToken": "t",
            "seed": SEED,
            "k": 1,
            "g": 1,
            "termsOfService": "https://x/terms",
            "privacyPolicy": "https://x/privacy",
        }
    )
    assert "(https://x/terms)" in terms_notice(named)
    assert "(https://x/privacy)" in terms_notice(named)
