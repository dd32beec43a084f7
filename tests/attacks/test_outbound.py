"""A tenant tries to reach the machine it runs on: loopback in every spelling, private and
link-local addresses, the internal API, the platform's own ports. Every attempt must fail, and
the listeners must never see it."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from mayfly.runtime.config import own_addresses
from tests.attacks.conftest import Canary
from tests.conftest import missing
from tests.runtime.harness import LivePlatform

pytestmark = pytest.mark.runtime

PROBE = """
import { connect } from "cloudflare:sockets";

const FETCHES = %(fetches)s;
const CONNECTS = %(connects)s;

function timeout(ms) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), ms));
}

async function tryFetch(target) {
  try {
    const response = await fetch(target, { signal: AbortSignal.timeout(3000) });
    const body = await response.text();
    return { target, reached: true, detail: `HTTP ${response.status} ${body.slice(0, 60)}` };
  } catch (err) {
    return { target, reached: false, detail: String(err) };
  }
}

async function tryConnect(target) {
  try {
    const socket = connect(target);
    await Promise.race([socket.opened, timeout(3000)]);
    const writer = socket.writable.getWriter();
    await writer.write(new TextEncoder().encode("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));
    const { value } = await Promise.race([socket.readable.getReader().read(), timeout(3000)]);
    socket.close();
    const detail = value ? new TextDecoder().decode(value).slice(0, 60) : "connected, no data";
    return { target, reached: true, detail };
  } catch (err) {
    return { target, reached: false, detail: String(err) };
  }
}

export default {
  async fetch() {
    const [fetches, connects] = await Promise.all([
      Promise.all(FETCHES.map(tryFetch)),
      Promise.all(CONNECTS.map(tryConnect)),
    ]);
    return Response.json({ fetches, connects });
  },
};
"""


def targets(live: LivePlatform, canary: Canary) -> tuple[list[str], list[str]]:
    c, internal = canary.port, live.internal_port
    hosts = [
        f"127.0.0.1:{c}",
        f"localhost:{c}",
        f"[::1]:{c}",
        f"0.0.0.0:{c}",
        f"2130706433:{c}",  # 127.0.0.1 as one decimal number
        f"0x7f000001:{c}",
        f"127.1:{c}",
        f"[::ffff:127.0.0.1]:{c}",  # IPv4-mapped IPv6
        "10.0.0.1:80",
        "192.168.0.1:80",
        "169.254.169.254:80",  # cloud metadata
        f"127.0.0.1:{internal}",  # the control plane's internal API
        f"127.0.0.1:{live.public_port}",  # the public API
        f"127.0.0.1:{live.port}",  # the Workers port itself
    ]
    fetches = [f"http://{h}/" for h in hosts]
    fetches[hosts.index(f"127.0.0.1:{internal}")] += "internal/v1/health"
    fetches.append("http://169.254.169.254/latest/meta-data/")
    connects = [h for h in hosts if not h.startswith(("0x", "127.1:"))]
    return fetches, connects


def test_the_canary_counts_a_connection_from_the_host(canary: Canary) -> None:
    before = canary.hits
    with socket.create_connection(("127.0.0.1", canary.port)) as conn:
        conn.recv(100)
    assert canary.hits == before + 1
    canary.hits = before


def test_a_tenant_cannot_reach_loopback_private_or_internal_addresses(
    live: LivePlatform, canary: Canary
) -> None:
    fetches, connects = targets(live, canary)
    account = live.provision()
    source = PROBE % {"fetches": json.dumps(fetches), "connects": json.dumps(connects)}
    live.deploy(account, "probe", source)
    internal_before = len(live.internal.paths)

    response = live.get(live.host(account, "probe"), timeout=60)

    assert response.status_code == 200, response.text
    report = response.json()
    attempts = report["fetches"] + report["connects"]
    assert len(attempts) == len(fetches) + len(connects)
    reached = [a for a in attempts if a["reached"]]
    assert reached == [], json.dumps(reached, indent=1)
    assert canary.hits == 0
    # The only internal requests are the dispatcher's own (route and code of the probe).
    tenant_era = live.internal.paths[internal_before:]
    assert all(p.startswith(("/internal/v1/route", "/internal/v1/versions/")) for p in tenant_era)
    assert "/internal/v1/health" not in live.internal.paths


def test_a_tenant_cannot_reach_the_hosts_own_addresses(live: LivePlatform) -> None:
    """workerd counts an interface address in a range it does not call private (a public one,
    or 192.0.2.0/24 here) as public: every service listening on all addresses would be reachable
    through it, so the shard's network denies the machine's own addresses."""
    own = []
    for cidr in own_addresses():
        address = ipaddress.ip_address(cidr.split("/")[0])
        mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped
        if not (address.is_loopback or address.is_link_local or mapped):
            own.append(str(address))
    if not own:
        missing("a network interface with an address other than loopback or link-local")
    canary = Canary(tuple(own))
    live.loop.run(canary.start())
    try:
        hosts = [f"[{a}]:{canary.port}" if ":" in a else f"{a}:{canary.port}" for a in own]
        hosts += [f"[::ffff:{a}]:{canary.port}" for a in own if ":" not in a]
        account = live.provision()
        source = PROBE % {
            "fetches": json.dumps([f"http://{h}/" for h in hosts]),
            "connects": json.dumps(hosts),
        }
        live.deploy(account, "own", source)

        response = live.get(live.host(account, "own"), timeout=60)

        assert response.status_code == 200, response.text
        report = response.json()
        reached = [a for a in report["fetches"] + report["connects"] if a["reached"]]
        assert reached == [], json.dumps(reached, indent=1)
        assert canary.hits == 0
    finally:
        live.loop.run(canary.stop())
