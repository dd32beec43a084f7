"""U1–U4 and account scoping (9109)."""

from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, provision


def test_temporary_token_is_an_account_token(client: TestClient) -> None:
    token = provision(client)["account"]["apiToken"]
    verify = client.get("user/tokens/verify", headers=auth(token))
    assert verify.json()["errors"][0]["code"] == 1000
    user = client.get("user", headers=auth(token))
    assert user.json()["errors"][0]["code"] == 9109


def test_accounts_and_memberships_paginate(client: TestClient) -> None:
    created = provision(client)["account"]
    token = created["apiToken"]
    accounts = client.get("accounts?page=1", headers=auth(token)).json()
    assert [a["id"] for a in accounts["result"]] == [created["id"]]
    assert accounts["result_info"]["total_count"] == 1
    members = client.get("memberships?page=1", headers=auth(token)).json()
    assert members["result"][0]["account"]["id"] == created["id"]
    assert client.get("accounts?page=2", headers=auth(token)).json()["result"] == []


def test_a_token_of_account_a_gets_9109_on_account_b(client: TestClient) -> None:
    a = provision(client)["account"]
    b = provision(client)["account"]
    for path in (
        f"accounts/{b['id']}/workers/services/x",
        f"accounts/{b['id']}/workers/subdomain",
        f"accounts/{b['id']}/workers/scripts/x/deployments",
        f"accounts/{b['id']}",
    ):
        response = client.get(path, headers=auth(a["apiToken"]))
        assert response.status_code == 403, path
        assert response.json()["errors"][0]["code"] == 9109


def test_unknown_tokens(client: TestClient) -> None:
    """Cloudflare's answers, which wrangler prints as one error (10000 sends it into its
    authentication-error handler, which fails again): a malformed token 400/6003 with 6111 in
    its error_chain, a well-formed unknown one 9109; no token at all stays 10000."""
    malformed = client.get("accounts", headers=auth("nope"))
    assert malformed.status_code == 400
    assert malformed.json()["errors"] == [
        {
            "code": 6003,
            "message": malformed.json()["errors"][0]["message"],
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    ]
    truncated = client.get("accounts", headers=auth("mfp_" + "x" * 42))
    assert truncated.json()["errors"][0]["code"] == 6003
    unknown = client.get("accounts", headers=auth("mfp_" + "x" * 43))
    assert unknown.status_code == 401 and unknown.json()["errors"][0]["code"] == 9109
    assert "Invalid access token" in unknown.json()["errors"][0]["message"]
    assert client.get("accounts").json()["errors"][0]["code"] == 10000
    unknown_temp = client.get("accounts", headers=auth("mft_" + "x" * 43))
    assert unknown_temp.status_code == 401
    assert unknown_temp.json()["errors"][0]["code"] == 10001


def test_admin_created_permanent_account(client: TestClient, platform: Platform) -> None:
    _account, token = platform.services.accounts.create_permanent("acme")
    assert token.startswith("mfp_")
    response = client.get("accounts", headers=auth(token)).json()
    assert response["result"][0]["name"] == "acme"


def test_trailing_slash_base_url_double_slashes(client: TestClient) -> None:
    token = provision(client)["account"]["apiToken"]
    response = client.get("http://testserver/client/v4//accounts", headers=auth(token))
    assert response.status_code == 200


def test_the_api_also_answers_without_the_client_v4_prefix(client: TestClient) -> None:
    token = provision(client)["account"]["apiToken"]
    response = client.get("http://testserver/accounts", headers=auth(token))
    assert response.status_code == 200
    missing = client.get("http://testserver/accounts/x/nothing-here", headers=auth(token))
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 7003


def test_the_root_sends_browsers_to_the_dashboard(client: TestClient) -> None:
    browser = client.get(
        "http://testserver/", headers={"accept": "text/html"}, follow_redirects=False
    )
    assert browser.status_code == 303 and browser.headers["location"] == "/dashboard"
    assert client.get("http://testserver/").json()["api"] == "/client/v4"
