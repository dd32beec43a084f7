"""Limits seen through a real server: who the client is behind a trusted proxy, and a sign-up flood
with real argon2 that gets 429s while another tenant's API is served (how fast: measured in
bench/signup_flood.py, idle and during a flood)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.abuse.live_server import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[2]


def device_code(server: LiveServer, forwarded_for: str) -> httpx.Response:
    return httpx.post(
        server.api_url + "/oauth/device/code",
        data={"client_id": "mayfly-cli"},
        headers={"x-forwarded-for": forwarded_for},
        timeout=30,
    )


def test_with_a_trusted_proxy_limits_key_on_x_forwarded_for(tmp_path: Path) -> None:
    flags = ("--forwarded-allow-ips", "127.0.0.1", "--device-codes-per-hour", "1")
    with live_server(tmp_path, *flags) as server:
        assert device_code(server, "203.0.113.1").status_code == 200
        refused = device_code(server, "203.0.113.1")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert device_code(server, "203.0.113.2").status_code == 200
        # A proxy's chain: the client is the address the trusted proxy saw.
        assert device_code(server, "203.0.113.3, 127.0.0.1").status_code == 200
        assert device_code(server, "203.0.113.3").status_code == 429
        # IPv6 clients of one /64 share the limit.
        assert device_code(server, "2001:db8:7:7::1").status_code == 200
        assert device_code(server, "2001:db8:7:7::beef").status_code == 429
        assert device_code(server, "2001:db8:7:8::1").status_code == 200


def test_without_trusted_proxies_limits_key_on_the_peer(tmp_path: Path) -> None:
    with live_server(tmp_path, "--device-codes-per-hour", "1") as server:
        assert device_code(server, "203.0.113.1").status_code == 200
        # A client cannot choose its address: the header is ignored, the peer has used its code.
        assert device_code(server, "203.0.113.2").status_code == 429


def test_sign_up_flood_gets_429_while_another_tenant_is_served(tmp_path: Path) -> None:
    # A trusted proxy so that the flood can come from many addresses, as a botnet's would.
    with live_server(tmp_path, "--forwarded-allow-ips", "127.0.0.1") as server:
        tenant = server.provision()
        url = f"{server.api_url}/client/v4/accounts/{tenant['id']}/storage/kv/namespaces"
        headers = {"authorization": f"Bearer {tenant['apiToken']}"}
        with httpx.Client(headers=headers, timeout=30) as api:
            attacker = subprocess.Popen(
                [sys.executable, "-m", "tests.abuse.signup_flood", server.api_url, "8", "12"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                assert attacker.stderr is not None
                assert attacker.stderr.readline() == "flooding\n"  # the flood is under way
                during = [api.get(url) for _ in range(40)]
                output, _ = attacker.communicate(timeout=120)
            finally:
                attacker.kill()
                attacker.wait()
    statuses = {int(k): v for k, v in json.loads(output).items()}
    print(f"flood answers: {statuses}")
    assert [r.status_code for r in during] == [200] * 40, [r.text for r in during]
    assert statuses.get(429, 0) > 0
    assert all(status < 500 for status in statuses), statuses
    assert statuses.get(303, 0) <= 60  # --signups-per-minute-total
