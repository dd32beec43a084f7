"""The client side of the proof of work (spec §4.3): one sequential SHA-256 chain.

h0 = SHA256(seed); each of the k checkpoints is g further SHA-256 applications of the previous raw
digest; the solution is standard base64 of h0 || h1 || … || hk. Implemented here rather than
shared with the server so that the SDK depends on nothing server-side.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from mayfly.sdk.errors import ChallengeUnsupported
from mayfly.sdk.models import Challenge

# wrangler refuses more work than this; so do we (a hostile server cannot make us spin forever).
MAX_ITERATIONS = 64_000_000
SEED_BYTES = 32

Progress = Callable[[int, int], None]
"""Called with (checkpoints done, checkpoints total) after each checkpoint."""


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_challenge(raw: object) -> Challenge:
    """Validate a challenge `result` like wrangler does; raise ChallengeUnsupported otherwise."""
    if not isinstance(raw, dict) or not all(
        key in raw for key in ("challengeToken", "seed", "k", "g")
    ):
        raise ChallengeUnsupported(
            "The proof-of-work challenge is missing required fields "
            "(challengeToken, seed, k, g); is the API URL a Mayfly server?"
        )
    token, seed, k, g = raw["challengeToken"], raw["seed"], raw["k"], raw["g"]
    if not isinstance(token, str) or not isinstance(seed, str):
        raise ChallengeUnsupported("The proof-of-work challenge has a malformed token or seed.")
    if not _positive_int(k) or not _positive_int(g) or k * g > MAX_ITERATIONS:
        raise ChallengeUnsupported(
            f"The proof-of-work challenge asks for k={k!r} × g={g!r} hashes; "
            f"this client accepts positive integers up to {MAX_ITERATIONS:,} in all."
        )
    try:
        seed_bytes = b64url_decode(seed)
    except ValueError as exc:
        raise ChallengeUnsupported("The proof-of-work seed is not base64url.") from exc
    if len(seed_bytes) != SEED_BYTES:
        raise ChallengeUnsupported(
            f"The proof-of-work seed is {len(seed_bytes)} bytes; it must be {SEED_BYTES}."
        )
    terms, privacy = raw.get("termsOfService"), raw.get("privacyPolicy")
    return Challenge(
        token=token,
        seed=seed_bytes,
        k=k,
        g=g,
        terms_url=terms if isinstance(terms, str) else None,
        privacy_url=privacy if isinstance(privacy, str) else None,
    )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def solve(seed: bytes, k: int, g: int, progress: Progress | None = None) -> bytes:
    """h0 || h1 || … || hk (32 × (k + 1) bytes)."""
    sha256 = hashlib.sha256
    digest = sha256(seed).digest()
    points = [digest]
    for done in range(1, k + 1):
        for _ in range(g):
            digest = sha256(digest).digest()
        points.append(digest)
        if progress is not None:
            progress(done, k)
    return b"".join(points)


def solve_challenge(challenge: Challenge, progress: Progress | None = None) -> str:
    """The `solution.checkpoints` string for a challenge: standard base64 with padding."""
    return base64.b64encode(solve(challenge.seed, challenge.k, challenge.g, progress)).decode()
