"""P1/P2 wire protocol, proof-of-work enforcement and the brakes (DESIGN §4)."""

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, solve_challenge
from tests.integration.test_metrics import samples


def post_solution(client: TestClient, challenge: dict, checkpoints: str) -> object:
    return client.post(
        "provisioning/previews",
        content=json.dumps(
            {
                "acceptTermsOfService": "yes",
                "challengeToken": challenge["challengeToken"],
                "solution": {"checkpoints": checkpoints},
            }
        ),
        headers={"content-type": "text/plain;charset=UTF-8"},
    )


def test_challenge_has_wranglers_fields(client: TestClient) -> None:
    result = client.post("provisioning/previews/challenge", content="{}").json()["result"]
    assert {"challengeToken", "seed", "k", "g"} <= set(result)
    assert result["termsOfService"] == "https://mayfly.invalid/terms"
    assert result["privacyPolicy"] == "https://mayfly.invalid/privacy"
    assert result["k"] == 8 and result["g"] == 50


def test_default_work_is_k1000_g2000_at_most_and_300k_hashes_idle(tmp_path: Path) -> None:
    fixed = Platform.create(
        make_settings(tmp_path / "a", pow_k=1000, pow_g=2000, pow_adaptive=False)
    )
    with TestClient(fixed.public_app(), base_url="http://t/client/v4/") as client:
        result = client.post("provisioning/previews/challenge").json()["result"]
    assert (result["k"], result["g"]) == (1000, 2000)
    adaptive = Platform.create(make_settings(tmp_path / "b", pow_k=1000, pow_g=2000))
    with TestClient(adaptive.public_app(), base_url="http://t/client/v4/") as client:
        result = client.post("provisioning/previews/challenge").json()["result"]
    assert (result["k"], result["g"]) == (1000, 300)
    assert adaptive.services.provisioning.difficulty().work == 300_000


def challenge_g(client: TestClient) -> int:
    result = client.post("provisioning/previews/challenge").json()["result"]
    assert result["k"] == 8
    return int(result["g"])


def test_difficulty_rises_under_a_provisioning_flood_and_falls_back(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = make_settings(
        tmp_path,
        pow_k=8,
        pow_g=500,
        pow_min_work=800,
        pow_busy_address=4,
        pow_busy_platform=6,
        pow_pressure_window=600,
        accounts_per_hour=100,
    )
    platform = Platform.create(settings, clock=clock)
    app = platform.public_app()
    base = "http://t/client/v4/"
    provisioning = platform.services.provisioning
    with (
        TestClient(app, base_url=base, client=("198.51.100.7", 1)) as flooder,
        TestClient(app, base_url=base, client=("203.0.113.9", 1)) as bystander,
    ):
        assert challenge_g(flooder) == challenge_g(bystander) == 100  # idle: the minimum
        for _ in range(2):
            provision(flooder)
        # The flooding address pays more than its neighbour.
        assert challenge_g(flooder) == 300
        assert challenge_g(bystander) == 100 + round(400 * 2 / 6)
        for _ in range(2):
            provision(flooder)
        assert challenge_g(flooder) == 500  # the configured maximum, never more
        for _ in range(2):
            provision(flooder)
        assert challenge_g(bystander) == 500  # platform-wide pressure reaches everyone
        assert provisioning.difficulty().work == 8 * 500
        assert provisioning.difficulty().pressure == 1.0
        assert samples(platform)["mayfly_provisioning_pow_work"][0][1] == 8 * 500
        clock.advance(300)
        assert challenge_g(bystander) == 500  # still inside the window
        clock.advance(301)
        assert challenge_g(flooder) == challenge_g(bystander) == 100
        assert provisioning.difficulty().pressure == 0.0
        assert samples(platform)["mayfly_provisioning_pow_work"][0][1] == 8 * 100


def test_difficulty_stays_within_wranglers_bound(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, pow_k=1000, pow_g=100_000, pow_min_work=10**9)
    platform = Platform.create(settings)
    assert platform.services.provisioning.difficulty().work == 64_000_000


def test_provisioning_creates_a_usable_account(client: TestClient, platform: Platform) -> None:
    result = provision(client)
    account, claim = result["account"], result["claim"]
    assert re.fullmatch(r"[0-9a-f]{32}", account["id"])
    assert re.fullmatch(r"[a-z]+-[a-z]+", account["name"])
    assert account["apiToken"].startswith("mft_")
    assert claim["url"].startswith("http://localhost:8787/claim/")
    assert account["expiresAt"] == claim["expiresAt"]
    assert account["expiresAt"].endswith("Z")
    whoami = client.get("accounts", headers=auth(account["apiToken"])).json()
    assert whoami["result"][0]["id"] == account["id"]
    subdomain = client.get(
        f"accounts/{account['id']}/workers/subdomain", headers=auth(account["apiToken"])
    ).json()
    assert subdomain["result"]["subdomain"] == account["name"]


def test_tokens_and_claim_tokens_are_stored_hashed(client: TestClient, platform: Platform) -> None:
    result = provision(client)
    token = result["account"]["apiToken"]
    claim_token = result["claim"]["url"].rsplit("/", 1)[1]
    db_files = list((platform.settings.data_dir).glob("mayfly.db*"))
    blob = b"".join(p.read_bytes() for p in db_files)
    assert token.encode() not in blob
    assert claim_token.encode() not in blob


def test_wrong_solution_is_1019(client: TestClient) -> None:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    good = solve_challenge(challenge)
    import base64

    raw = bytearray(base64.b64decode(good))
    raw[-1] ^= 0xFF
    response = post_solution(client, challenge, base64.b64encode(bytes(raw)).decode())
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 1019


def test_forged_token_is_1019(client: TestClient) -> None:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    forged = dict(challenge, challengeToken=challenge["challengeToken"][:-4] + "AAAA")
    response = post_solution(client, forged, solve_challenge(challenge))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 1019


def test_replayed_solution_is_1019(client: TestClient) -> None:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    solution = solve_challenge(challenge)
    assert post_solution(client, challenge, solution).status_code == 200
    again = post_solution(client, challenge, solution)
    assert again.status_code == 403
    assert again.json()["errors"][0]["code"] == 1019
    assert "already used" in again.json()["errors"][0]["message"]


def test_expired_challenge_is_1019(client: TestClient, clock: ManualClock) -> None:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    clock.advance(121)
    response = post_solution(client, challenge, solve_challenge(challenge))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 1019


def test_terms_must_be_accepted(client: TestClient) -> None:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    response = client.post(
        "provisioning/previews",
        json={
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solve_challenge(challenge)},
        },
    )
    assert response.status_code == 400


def test_challenge_rate_limit_is_10429_with_retry_after(tmp_path: Path) -> None:
    platform = Platform.create(make_settings(tmp_path, challenges_per_minute=3))
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        for _ in range(3):
            assert client.post("provisioning/previews/challenge").status_code == 200
        limited = client.post("provisioning/previews/challenge")
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == 10429
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_account_rate_limit_per_address(tmp_path: Path) -> None:
    platform = Platform.create(make_settings(tmp_path, accounts_per_hour=2))
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        provision(client)
        provision(client)
        challenge = client.post("provisioning/previews/challenge").json()["result"]
        limited = post_solution(client, challenge, solve_challenge(challenge))
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == 10429
    assert int(limited.headers["retry-after"]) > 0


def test_global_cap_on_live_temporary_accounts(tmp_path: Path) -> None:
    platform = Platform.create(make_settings(tmp_path, max_live_temporary=1))
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        provision(client)
        challenge = client.post("provisioning/previews/challenge").json()["result"]
        limited = post_solution(client, challenge, solve_challenge(challenge))
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == 10429


@pytest.mark.parametrize("body", ["[]", "not json", '{"acceptTermsOfService": "yes"}'])
def test_malformed_create_requests_are_4xx(client: TestClient, body: str) -> None:
    response = client.post("provisioning/previews", content=body)
    assert 400 <= response.status_code < 500
    assert response.json()["success"] is False
