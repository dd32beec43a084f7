"""What Mayfly serves of the Workers platform, and what it refuses (10021) before anything goes live.

One list for both clients: the server's upload validation (services/workers/uploads.py) is the authority,
and `mayfly deploy` (project/config.py) refuses the same features early from the project's
configuration, with the same words. README's table "What Mayfly serves" is checked against it
(tests/unit/test_surface.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["supported", "not yet", "never"]

BASE_URL_NOTE = "Mayfly serves each Worker at <script>.<account>.<domain> only (no zones)"


@dataclass(frozen=True)
class Refused:
    """A feature Mayfly does not serve: how the upload metadata and wrangler's config name it."""

    feature: str
    status: Status
    instead: str
    binding_types: tuple[str, ...] = ()  # metadata.bindings[].type
    config_keys: tuple[str, ...] = ()  # wrangler.toml / wrangler.json keys
    metadata_keys: tuple[str, ...] = ()  # top-level keys of the upload metadata

    def message(self, where: str) -> str:
        when = "yet" if self.status == "not yet" else "and will not"
        return f"{where}: Mayfly does not support {self.feature} ({when}); {self.instead}"


REFUSED: tuple[Refused, ...] = (
    Refused(
        "Durable Objects",
        "not yet",
        "keep state in a D1 database (d1_databases) or a KV namespace (kv_namespaces).",
        binding_types=("durable_object_namespace",),
        config_keys=("durable_objects", "migrations"),
        metadata_keys=("migrations",),
    ),
    Refused(
        "Queues (producers and consumers)",
        "not yet",
        "do the work in the request (ctx.waitUntil) or record it in KV.",
        ("queue",),
        ("queues",),
    ),
    Refused(
        "Analytics Engine",
        "never",
        "log with console.log and read it with `mayfly tail`.",
        ("analytics_engine",),
        ("analytics_engine_datasets",),
    ),
    Refused(
        "Vectorize", "never", "call a vector database over HTTPS.", ("vectorize",), ("vectorize",)
    ),
    Refused(
        "Hyperdrive",
        "never",
        "connect to your database over HTTPS.",
        ("hyperdrive",),
        ("hyperdrive",),
    ),
    Refused(
        "Workers AI", "never", "call an AI provider's HTTPS API with fetch().", ("ai",), ("ai",)
    ),
    Refused(
        "Browser Rendering",
        "never",
        "call a browser service over HTTPS.",
        ("browser",),
        ("browser",),
    ),
    Refused(
        "Workflows",
        "not yet",
        "run steps in the request or chain Workers over HTTPS.",
        ("workflow",),
        ("workflows",),
    ),
    Refused(
        "Dispatch namespaces (Workers for Platforms)",
        "never",
        "deploy each Worker on its own.",
        ("dispatch_namespace",),
        ("dispatch_namespaces",),
    ),
    Refused(
        "mTLS certificates",
        "never",
        "fetch() without a client certificate.",
        ("mtls_certificate",),
        ("mtls_certificates",),
    ),
    Refused(
        "Email sending",
        "never",
        "call an email provider's HTTPS API.",
        ("send_email",),
        ("send_email",),
    ),
    Refused(
        "Version metadata",
        "not yet",
        "name the version in a var (vars) if the Worker needs it.",
        ("version_metadata",),
        ("version_metadata",),
    ),
    Refused(
        "Tail Workers",
        "not yet",
        "watch a Worker's logs with `mayfly tail` or `wrangler tail`.",
        config_keys=("tail_consumers", "streaming_tail_consumers"),
        metadata_keys=("tail_consumers", "streaming_tail_consumers"),
    ),
    Refused(
        "Rate limiting bindings",
        "not yet",
        "count requests in KV.",
        ("ratelimit",),
        ("ratelimits",),
    ),
    Refused("Pipelines", "never", "send events over HTTPS.", ("pipelines",), ("pipelines",)),
    Refused(
        "Secrets Store",
        "not yet",
        "use Worker secrets (`mayfly secret put`).",
        ("secrets_store_secret",),
        ("secrets_store_secrets",),
    ),
    Refused(
        "Images bindings",
        "never",
        "transform images in the Worker or call an image service.",
        ("images",),
        ("images",),
    ),
    Refused(
        "Containers",
        "never",
        "run the container elsewhere and call it over HTTPS.",
        config_keys=("containers",),
        metadata_keys=("containers",),
    ),
    Refused(
        "Worker Loader bindings",
        "never",
        "deploy each Worker on its own.",
        ("worker_loader",),
        ("worker_loaders",),
    ),
    Refused(
        "VPC services",
        "never",
        "reach public HTTPS endpoints with fetch().",
        ("vpc_service", "vpc_network"),
        ("vpc_services", "vpc_networks"),
    ),
    Refused(
        "Unsafe bindings and metadata",
        "never",
        "use the supported bindings.",
        config_keys=("unsafe",),
        metadata_keys=("capnp_schema",),
    ),
    Refused(
        "Routes and custom domains",
        "never",
        f"{BASE_URL_NOTE}; remove `routes`/`route`.",
        config_keys=("routes", "route"),
    ),
)

# What Mayfly serves, for README's table (feature, how to use it).
SERVED: tuple[tuple[str, str], ...] = (
    (
        "ES-module Workers (fetch handler, WebSockets, streams, HTMLRewriter, nodejs_compat)",
        "main_module",
    ),
    ("Environment variables, JSON vars and secrets", "vars, secrets"),
    ("KV namespaces", "kv_namespaces"),
    ("D1 databases (SQL: prepare/bind, batch, exec; import, export, migrations)", "d1_databases"),
    ("Static assets", "assets"),
    ("R2 buckets (objects, multipart uploads)", "r2_buckets"),
    ("Service bindings to Workers of the same account (fetch and RPC)", "services"),
    ("Cache API (caches.default, caches.open): a workers.dev no-op", "caches"),
    ("Service-worker syntax (addEventListener('fetch'), bindings as globals)", "body_part"),
    ("Cron triggers (scheduled handler, UTC)", "triggers.crons"),
    ("Tails (wrangler tail, mayfly tail)", "tail"),
)


def _index(attribute: str) -> dict[str, Refused]:
    return {key: r for r in REFUSED for key in getattr(r, attribute)}


REFUSED_BINDING_TYPES = _index("binding_types")
REFUSED_CONFIG_KEYS = _index("config_keys")
REFUSED_METADATA_KEYS = _index("metadata_keys")


def refused_binding(binding_type: str, name: str) -> str | None:
    refused = REFUSED_BINDING_TYPES.get(binding_type)
    return refused.message(f"Binding {name!r} ({binding_type})") if refused else None


def refused_metadata(key: str, value: object) -> str | None:
    """The refusal of a top-level metadata key that is present and not empty."""
    refused = REFUSED_METADATA_KEYS.get(key)
    if refused is None or value in (None, [], {}, ""):
        return None
    return refused.message(f"metadata.{key}")


def refused_config(key: str, value: object) -> str | None:
    refused = REFUSED_CONFIG_KEYS.get(key)
    if refused is None or value in (None, [], {}, ""):
        return None
    return refused.message(f"`{key}`")
