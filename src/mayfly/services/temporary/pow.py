"""Proof of work, wire-compatible with wrangler (spec §4.3).

The client computes h0 = SHA256(seed) and k checkpoints, each g further SHA-256 applications of the
previous raw digest. The server checks h0 and a random sample of segments, so verifying costs
samples × g hashes instead of k × g.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from mayfly.errors import ProofOfWorkInvalid
from mayfly.services.core.crypto import Crypto

DIGEST = 32


@dataclass(frozen=True)
class Challenge:
    id: str
    seed: bytes
    k: int
    g: int
    expires_at: float


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def chain(digest: bytes, rounds: int) -> bytes:
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


def issue(crypto: Crypto, k: int, g: int, now: datetime, ttl: int) -> tuple[str, Challenge]:
    """A signed, self-contained challenge token (no server state until it is used)."""
    challenge = Challenge(
        id=secrets.token_hex(16),
        seed=secrets.token_bytes(32),
        k=k,
        g=g,
        expires_at=now.timestamp() + ttl,
    )
    payload = json.dumps(
        {
            "id": challenge.id,
            "seed": b64url(challenge.seed),
            "k": k,
            "g": g,
            "exp": challenge.expires_at,
        },
        separators=(",", ":"),
    ).encode()
    token = b64url(payload) + "." + crypto.sign(payload)
    return token, challenge


def open_token(crypto: Crypto, token: str, now: datetime) -> Challenge:
    """Check the signature and expiry of a challenge token; single use is checked by the caller."""
    try:
        encoded, signature = token.split(".", 1)
        payload = b64url_decode(encoded)
    except (ValueError, TypeError) as exc:
        raise ProofOfWorkInvalid("The proof-of-work challenge token is malformed.") from exc
    if not crypto.verify(payload, signature):
        raise ProofOfWorkInvalid("The proof-of-work challenge token is not one of ours.")
    data = json.loads(payload)
    challenge = Challenge(
        id=data["id"],
        seed=b64url_decode(data["seed"]),
        k=data["k"],
        g=data["g"],
        expires_at=data["exp"],
    )
    if now.timestamp() > challenge.expires_at:
        raise ProofOfWorkInvalid(
            "The proof-of-work challenge expired; request a new one and solve it promptly."
        )
    return challenge


def verify(challenge: Challenge, checkpoints_b64: str, samples: int) -> None:
    """Raise ProofOfWorkInvalid unless the checkpoints are a correct chain (sampled)."""
    try:
        raw = base64.b64decode(checkpoints_b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise ProofOfWorkInvalid("The proof-of-work solution is not valid base64.") from exc
    if len(raw) != DIGEST * (challenge.k + 1):
        raise ProofOfWorkInvalid("The proof-of-work solution has the wrong length.")
    points = [raw[i * DIGEST : (i + 1) * DIGEST] for i in range(challenge.k + 1)]
    if points[0] != hashlib.sha256(challenge.seed).digest():
        raise ProofOfWorkInvalid("The proof-of-work solution does not start from the seed.")
    segments = range(1, challenge.k + 1)
    picked = (
        list(segments)
        if challenge.k <= samples
        else secrets.SystemRandom().sample(segments, samples)
    )
    # The last segment is always checked: it proves the chain reached the end.
    for j in {*picked, challenge.k}:
        if chain(points[j - 1], challenge.g) != points[j]:
            raise ProofOfWorkInvalid("The proof-of-work solution is wrong.")
