import base64

import pytest

from mayfly.errors import ProofOfWorkInvalid
from mayfly.services.core.crypto import Crypto
from mayfly.services.temporary import pow
from tests import pow_solver
from tests.clock import ManualClock

CRYPTO = Crypto(b"k" * 32)


def issue(k: int = 6, g: int = 40) -> tuple[str, pow.Challenge]:
    return pow.issue(CRYPTO, k, g, ManualClock().now(), ttl=120)


def test_a_correct_solution_verifies() -> None:
    _, challenge = issue()
    solution = base64.b64encode(pow_solver.solve(challenge.seed, challenge.k, challenge.g)).decode()
    pow.verify(challenge, solution, samples=3)


def test_solution_matches_the_wire_protocol_definition() -> None:
    import hashlib

    seed = bytes(range(32))
    raw = pow_solver.solve(seed, 2, 3)
    h0 = hashlib.sha256(seed).digest()
    h1 = h0
    for _ in range(3):
        h1 = hashlib.sha256(h1).digest()
    assert raw[:32] == h0
    assert raw[32:64] == h1
    assert len(raw) == 32 * 3


@pytest.mark.parametrize("segment", range(1, 7))
def test_any_wrong_segment_is_caught_when_all_are_sampled(segment: int) -> None:
    _, challenge = issue()
    raw = bytearray(pow_solver.solve(challenge.seed, challenge.k, challenge.g))
    raw[segment * 32] ^= 1
    with pytest.raises(ProofOfWorkInvalid):
        pow.verify(challenge, base64.b64encode(bytes(raw)).decode(), samples=16)


def test_wrong_length_and_bad_base64_and_wrong_start() -> None:
    _, challenge = issue()
    raw = pow_solver.solve(challenge.seed, challenge.k, challenge.g)
    with pytest.raises(ProofOfWorkInvalid, match="length"):
        pow.verify(challenge, base64.b64encode(raw[:-32]).decode(), samples=3)
    with pytest.raises(ProofOfWorkInvalid, match="base64"):
        pow.verify(challenge, "not base64 !!", samples=3)
    other = pow_solver.solve(b"x" * 32, challenge.k, challenge.g)
    with pytest.raises(ProofOfWorkInvalid, match="seed"):
        pow.verify(challenge, base64.b64encode(other).decode(), samples=3)


def test_forged_and_expired_tokens_are_refused() -> None:
    token, _ = issue()
    clock = ManualClock()
    assert pow.open_token(CRYPTO, token, clock.now()).k == 6
    with pytest.raises(ProofOfWorkInvalid, match="not one of ours"):
        pow.open_token(Crypto(b"z" * 32), token, clock.now())
    payload, sig = token.split(".")
    tampered = pow.b64url(pow.b64url_decode(payload).replace(b'"k":6', b'"k":1')) + "." + sig
    with pytest.raises(ProofOfWorkInvalid):
        pow.open_token(CRYPTO, tampered, clock.now())
    clock.advance(121)
    with pytest.raises(ProofOfWorkInvalid, match="expired"):
        pow.open_token(CRYPTO, token, clock.now())


def test_seed_is_32_bytes_base64url() -> None:
    _token, challenge = issue()
    assert len(challenge.seed) == 32
    assert "=" not in pow.b64url(challenge.seed)
