"""The capnp config of a shard: the dispatcher Worker, its bindings and two fd-passed sockets."""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayfly.runtime import asset_workers

HTTP_SOCKET = "http"
ADMIN_SOCKET = "admin"
SECRET_ENV_VAR = "MAYFLY_INTERNAL_SECRET"  # noqa: S105 (a variable name)
# The per-shard token that starts the dispatcher's request marks on stdout (shard.py).
MARK_ENV_VAR = "MAYFLY_SHARD_MARK"
DISPATCHER_FILE = "dispatcher.js"
# Every module of the dispatcher Worker, its main module first; each is a file in this package.
DISPATCHER_MODULES = (
    DISPATCHER_FILE,
    "control.js",
    "routes.js",
    "loader.js",
    "inflight.js",
    "response.js",
    "admin.js",
    "kv.js",
    "d1.js",
    "tail.js",
    "assets.js",
    "tenant.js",
    "metadata.js",
    "r2.js",
    "services.js",
    "outbound.js",
)
# And Cloudflare's asset-serving Workers that assets.js runs, copied from the pinned miniflare
# package (asset_workers.py).
ASSET_WORKER_MODULES = tuple(asset_workers.MODULES)
DISPATCHER_COMPATIBILITY_DATE = "2025-11-01"


@dataclass(frozen=True)
class DispatcherSettings:
    request_timeout_ms: int
    route_ttl_ms: int
    stale_route_ms: int
    control_plane_timeout_ms: int
    # How long a request's ctx.waitUntil work may run after its response (tenant.js).
    wait_until_ms: int = 30_000
    # Per version and shard: subrequests open or waiting, and connections open (outbound.js).
    subrequests: int = 1000
    outbound_connections: int = 64
    # Connections open per account and shard, and per shard (0: outbound.js's default; the data
    # plane derives it from the shard's descriptor limit: shard_outbound_ceiling).
    account_outbound_connections: int = 256
    shard_outbound_connections: int = 0
    # --forwarded-allow-ips: proxies whose X-Forwarded-For / -Proto the dispatcher believes.
    trusted_proxies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "requestTimeoutMs": self.request_timeout_ms,
            "routeTtlMs": self.route_ttl_ms,
            "staleRouteMs": self.stale_route_ms,
            "controlPlaneTimeoutMs": self.control_plane_timeout_ms,
            "waitUntilMs": self.wait_until_ms,
            "subrequests": self.subrequests,
            "outboundConnections": self.outbound_connections,
            "accountOutboundConnections": self.account_outbound_connections,
        }
        if self.shard_outbound_connections:
            settings["shardOutboundConnections"] = self.shard_outbound_connections
        if self.trusted_proxies:
            settings["trustedProxies"] = list(self.trusted_proxies)
        return settings


def shard_outbound_ceiling(descriptors: int) -> int:
    """Outbound connections a shard may have open at once, from its descriptor limit: half of it.
    The other half is for what the shard needs besides: its clients' connections (one per
    keep-alive connection of a client or proxy, the larger part), its connections to the control
    plane, workerd's own files and pipes."""
    return max(1, descriptors // 2)


def capnp_string(value: str) -> str:
    """A capnp text literal. Only printable ASCII is needed here, so only it is accepted."""
    if not all(" " <= ch <= "~" for ch in value):
        raise ValueError(f"not printable ASCII: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def own_addresses(proc: Path = Path("/proc/net")) -> tuple[str, ...]:
    """Every IP address of this machine's interfaces (Linux: `fib_trie`'s local /32s and
    `if_inet6`), as one-address CIDRs. workerd's "public" is only "not a private range": an
    interface address in a public range (or in one it does not count as private, such as
    192.0.2.0/24) is public to it, and through it a tenant would reach every service of the host
    that listens on all addresses. IPv4 ones come in their IPv4-mapped IPv6 spelling too."""
    found: list[str] = []
    try:
        lines = (proc / "fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            address = ipaddress.IPv4Address(previous.strip().removeprefix("|-- "))
            found += [f"{address}/32", f"::ffff:{address}/128"]
    try:
        inet6 = (proc / "if_inet6").read_text().splitlines()
    except OSError:
        inet6 = []
    for line in inet6:
        if line.split():
            found.append(f"{ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))}/128")
    return tuple(dict.fromkeys(found))


def network(deny_also: Iterable[str]) -> str:
    """The only network tenants (and the dispatcher) may reach: public addresses (workerd-facts
    §5c), none of `deny_also` (this machine's own: own_addresses)."""
    deny = ", ".join(capnp_string(cidr) for cidr in ("local", "private", *deny_also))
    return f'(allow = ["public"], deny = [{deny}])'


def render_config(
    internal_address: str, settings: DispatcherSettings, own: Iterable[str] | None = None
) -> str:
    """The config text; `internal_address` is host:port of the control plane's internal listener.

    Both sockets have no address: the supervisor passes them with `--socket-fd`. The internal
    secret is not in the file (which the shard user can read): it comes from the environment.
    The network denies this machine's own addresses (`own`, default own_addresses()) on top of
    loopback and private ranges.
    """
    public_only = network(own_addresses() if own is None else own)
    settings_json = capnp_string(json.dumps(settings.to_json(), separators=(",", ":")))
    modules = ", ".join(
        f"(name = {capnp_string(m)}, esModule = embed {capnp_string(m)})"
        for m in (*DISPATCHER_MODULES, *ASSET_WORKER_MODULES)
    )
    return f"""# Generated by mayfly.runtime.config: one workerd shard of the Mayfly data plane.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ( name = "dispatcher",
      worker = (
        modules = [ {modules} ],
        compatibilityDate = "{DISPATCHER_COMPATIBILITY_DATE}",
        # ctx.exports hands tenants the KV, TailSink and AssetsBinding entrypoints with platform-set
        # props. service_binding_extra_handlers: a loaded Worker's entrypoint.scheduled() is a real
        # scheduled event (a ScheduledController; tails see cron and scheduledTime), not an RPC call.
        compatibilityFlags = ["enable_ctx_exports", "service_binding_extra_handlers"],
        bindings = [
          (name = "LOADER", workerLoader = ()),
          (name = "CONTROL_PLANE", service = "control-plane"),
          (name = "INTERNAL_SECRET", fromEnvironment = "{SECRET_ENV_VAR}"),
          (name = "SHARD_MARK", fromEnvironment = "{MARK_ENV_VAR}"),
          (name = "PUBLIC_NET", service = "public-net"),
          (name = "SETTINGS", json = {settings_json}),
        ],
        globalOutbound = "public-net",
      )
    ),
    ( name = "control-plane", external = (address = {capnp_string(internal_address)}, http = ()) ),
    ( name = "public-net", network = {public_only} ),
    # Replaces the implicit default, so nothing can fall back to a wider network.
    ( name = "internet", network = {public_only} ),
  ],
  sockets = [
    ( name = "{HTTP_SOCKET}", service = "dispatcher", http = () ),
    ( name = "{ADMIN_SOCKET}", service = (name = "dispatcher", entrypoint = "Admin"), http = () ),
  ],
);
"""
