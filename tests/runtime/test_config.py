"""The shard config: what the dispatcher is bound to, and what it is not."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from mayfly.runtime.config import (
    DISPATCHER_MODULES,
    DispatcherSettings,
    capnp_string,
    own_addresses,
    render_config,
    shard_outbound_ceiling,
)

SETTINGS = DispatcherSettings(
    request_timeout_ms=30_000,
    route_ttl_ms=5_000,
    stale_route_ms=600_000,
    control_plane_timeout_ms=5_000,
)


def test_sockets_have_no_address_so_that_the_supervisor_passes_them() -> None:
    config = render_config("127.0.0.1:4242", SETTINGS)
    assert '( name = "http", service = "dispatcher", http = () )' in config
    assert '(name = "dispatcher", entrypoint = "Admin")' in config
    assert "address" not in config.split("sockets = [")[1]


def test_tenants_and_the_dispatcher_reach_public_addresses_only() -> None:
    config = render_config("127.0.0.1:4242", SETTINGS, own=("198.51.100.7/32",))
    public = '(allow = ["public"], deny = ["local", "private", "198.51.100.7/32"])'
    assert f'( name = "public-net", network = {public} )' in config
    assert f'( name = "internet", network = {public} )' in config
    assert 'globalOutbound = "public-net"' in config
    assert config.count("network = ") == 2


def test_the_machines_own_addresses_are_denied_by_default(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(FIB_TRIE)
    (tmp_path / "if_inet6").write_text(
        "20010db8000000000000000000000007 02 40 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert own_addresses(tmp_path) == (
        "127.0.0.1/32",
        "::ffff:127.0.0.1/128",
        "203.0.113.9/32",
        "::ffff:203.0.113.9/128",
        "2001:db8::7/128",
        "::1/128",
    )
    assert own_addresses(tmp_path / "missing") == ()
    config = render_config("127.0.0.1:4242", SETTINGS)
    for cidr in own_addresses():
        assert f'"{cidr}"' in config


# /proc/net/fib_trie: the local /32s follow their address; the /8 and broadcasts are not ours.
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 203.0.113.0/24 2 0 2
           |-- 203.0.113.9
              /32 host LOCAL
        |-- 203.0.113.255
           /32 link BROADCAST
Local:
           |-- 127.0.0.1
              /32 host LOCAL
"""


def test_the_internal_api_is_an_external_service_and_the_secret_is_not_in_the_file() -> None:
    config = render_config("127.0.0.1:4242", SETTINGS)
    assert 'external = (address = "127.0.0.1:4242", http = ())' in config
    assert 'fromEnvironment = "MAYFLY_INTERNAL_SECRET"' in config
    assert (
        '(name = "SETTINGS", json = "{\\"requestTimeoutMs\\":30000,\\"routeTtlMs\\":5000,'
        '\\"staleRouteMs\\":600000,\\"controlPlaneTimeoutMs\\":5000,\\"waitUntilMs\\":30000,'
        '\\"subrequests\\":1000,\\"outboundConnections\\":64,'
        '\\"accountOutboundConnections\\":256}")' in config
    )


def test_the_shard_outbound_ceiling_is_half_the_descriptors_and_rendered_when_known() -> None:
    assert shard_outbound_ceiling(65536) == 32768
    assert shard_outbound_ceiling(20000) == 10000
    assert shard_outbound_ceiling(1) == 1
    config = render_config(
        "127.0.0.1:4242",
        replace(SETTINGS, account_outbound_connections=8, shard_outbound_connections=10000),
    )
    assert '\\"accountOutboundConnections\\":8,\\"shardOutboundConnections\\":10000}' in config


def test_capnp_strings_are_escaped_and_limited_to_printable_ascii() -> None:
    assert capnp_string('a"b\\c') == '"a\\"b\\\\c"'
    for bad in ("line\nbreak", "caf\u00e9", "nul\0"):
        with pytest.raises(ValueError):
            capnp_string(bad)


def test_every_dispatcher_module_is_embedded_and_ships_with_the_package() -> None:
    config = render_config("127.0.0.1:4242", SETTINGS)
    assert DISPATCHER_MODULES[0] == "dispatcher.js"
    for name in DISPATCHER_MODULES:
        assert f'(name = "{name}", esModule = embed "{name}")' in config
        assert resources.files("mayfly.runtime").joinpath(name).is_file()
    # The KV and TailSink entrypoints reach tenants through ctx.exports; a loaded Worker's
    # entrypoint.scheduled() is a scheduled event (cron triggers).
    assert 'compatibilityFlags = ["enable_ctx_exports", "service_binding_extra_handlers"]' in config
