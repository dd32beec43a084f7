"""The shard config: what the dispatcher is bound to, and what it is not."""

from __future__ import annotations

from importlib import resources

import pytest

from mayfly.runtime.config import (
    DISPATCHER_MODULES,
    DispatcherSettings,
    capnp_string,
    render_config,
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
    config = render_config("127.0.0.1:4242", SETTINGS)
    public = '(allow = ["public"], deny = ["local", "private"])'
    assert f'( name = "public-net", network = {public} )' in config
    assert f'( name = "internet", network = {public} )' in config
    assert 'globalOutbound = "public-net"' in config
    assert config.count("network = ") == 2


def test_the_internal_api_is_an_external_service_and_the_secret_is_not_in_the_file() -> None:
    config = render_config("127.0.0.1:4242", SETTINGS)
    assert 'external = (address = "127.0.0.1:4242", http = ())' in config
    assert 'fromEnvironment = "MAYFLY_INTERNAL_SECRET"' in config
    assert (
        '(name = "SETTINGS", json = "{\\"requestTimeoutMs\\":30000,\\"routeTtlMs\\":5000,'
        '\\"staleRouteMs\\":600000,\\"controlPlaneTimeoutMs\\":5000}")' in config
    )


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
