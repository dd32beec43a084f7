"""`mayfly login` / `mayfly logout`: a user token through the device flow, saved per API URL (0600)."""

from __future__ import annotations

import time

import click

from mayfly.cli.options import api_options, client_env
from mayfly.cli.output import Output
from mayfly.sdk import LoginStore, SavedLogin
from mayfly.sdk.device import DeviceLoginClient, forget_login

# Tests replace it to approve the request (or move a clock) while the CLI waits.
sleep = time.sleep


@click.command()
@api_options
def login(api_url: str, as_json: bool) -> None:
    """Log in as a person: approve this CLI in a browser (any machine), get an API token.

    Prints a URL and a short code; open the URL where you are logged in to Mayfly, check the code
    and approve. The token is saved for this API URL (file mode 0600) and used by every command
    unless --api-token or MAYFLY_API_TOKEN is given.
    """
    env = client_env()
    out = Output(as_json, env.now)
    store = LoginStore(env.config_dir())
    with out.errors(), DeviceLoginClient(api_url, transport=env.transport) as client:
        auth = client.start()
        out.notice(
            f"To log in, open\n\n    {auth.verification_uri_complete}\n\n"
            f"in a browser where you are logged in to Mayfly, and check that it shows the code\n\n"
            f"    {auth.user_code}\n"
        )
        out.begin("Waiting for approval in the browser")
        started = time.monotonic()
        token = client.wait(auth, sleep=lambda seconds: sleep(seconds))
        out.end("Waiting for approval in the browser", time.monotonic() - started)
        store.save(api_url, SavedLogin(token.access_token, token.account_id or None))
        out.result(
            {
                "email": token.email,
                "account_id": token.account_id,
                "account_name": token.account_name,
                "token_id": token.token_id,
                "credentials_file": str(store.path),
            },
            [
                f"Logged in as {token.email} (account {token.account_name}).",
                f"Token saved to {store.path}; `mayfly logout` revokes it.",
            ],
        )


@click.command()
@api_options
def logout(api_url: str, as_json: bool) -> None:
    """Revoke the token saved by `mayfly login` for this API URL, and forget it."""
    env = client_env()
    out = Output(as_json, env.now)
    store = LoginStore(env.config_dir())
    saved = store.load(api_url)
    if saved is None:
        out.result(
            {"logged_out": False, "revoked": False},
            [f"Not logged in to {api_url}; nothing to do."],
        )
        return
    with out.errors(), DeviceLoginClient(api_url, transport=env.transport) as client:
        revoked = client.revoke(saved.token)
        forget_login(store.path, api_url)
        out.result(
            {"logged_out": True, "revoked": revoked},
            [
                f"Logged out: the token was revoked and removed from {store.path}."
                if revoked
                else f"Logged out: the token no longer worked; removed it from {store.path}."
            ],
        )
