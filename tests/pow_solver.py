"""The client's side of the proof of work, as the tests' reference: the server only issues and
verifies (services/temporary/pow.py); the SDK and the CLI solve with mayfly.sdk.pow.solve."""

from __future__ import annotations

import hashlib


def solve(seed: bytes, k: int, g: int) -> bytes:
    """h0 || h1 || … || hk, each h(i+1) being h(i) hashed g times with SHA-256."""
    current = hashlib.sha256(seed).digest()
    out = [current]
    for _ in range(k):
        for _ in range(g):
            current = hashlib.sha256(current).digest()
        out.append(current)
    return b"".join(out)
