"""Every server setting, declared once: its name, default, help text and parser. A value comes
from the flag, else the MAYFLY_* environment variable, else this default (settings.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str

    @property
    def env_var(self) -> str:
        return "MAYFLY_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address the public API and the Workers listen on."),
    Setting("api_port", 8787, "Port of the public API and pages.", int),
    Setting("workers_port", 8788, "Port on which tenants' Workers are served.", int),
    Setting(
        "public_url",
        "",
        "Public URL of the API and pages (claim URLs are built from it); "
        "default http://localhost:<api-port>.",
    ),
    Setting("domain", "localhost", "Workers are served at <script>.<account>.<domain>."),
    Setting(
        "workers_url",
        "",
        "Public URL of the Workers, printed by the API, the pages and the CLI: a base "
        "(https://example.com: Workers at https://<script>.<account>.example.com) or a template "
        "with {script} and {account}; default http://<script>.<account>.<domain>:<workers-port>.",
    ),
    Setting("data_dir", ".mayfly", "Directory for the database, blobs and keys."),
    Setting(
        "database_url",
        "",
        "SQLAlchemy URL of the database; default SQLite in the data dir. "
        "postgresql+psycopg://… for PostgreSQL.",
    ),
    Setting(
        "secret_key", "", "Key for signing and encrypting; default a key file in the data dir."
    ),
    Setting("temporary_ttl", 3600, "Lifetime of a temporary account, in seconds.", int),
    Setting(
        "extension_seconds",
        24 * 3600,
        "Seconds a logged-in human adds to a temporary account from its claim page.",
        int,
    ),
    Setting("extensions_max", 3, "How many times a temporary account may be extended.", int),
    Setting(
        "extension_max_lifetime",
        7 * 24 * 3600,
        "Hard maximum lifetime of an extended temporary account, in seconds from its creation.",
        int,
    ),
    Setting("tombstone_cooldown", 7 * 24 * 3600, "Seconds a deleted account's name is kept.", int),
    Setting("audit_retention", 90 * 24 * 3600, "Seconds audit entries are kept.", int),
    Setting("reaper_interval", 30.0, "Seconds between reaper passes.", float),
    Setting(
        "cron_tick", 10.0, "Seconds between the scheduler's looks for due cron triggers.", float
    ),
    Setting(
        "cron_min_interval",
        60,
        "Shortest interval between two runs of a cron trigger, in seconds (shorter ones: 10021).",
        int,
    ),
    Setting("pow_k", 1000, "Proof of work: number of checkpoints.", int),
    Setting(
        "pow_g",
        2000,
        "Proof of work: SHA-256 iterations per checkpoint at the most (k × g is the maximum work, "
        "kept within wrangler's 64 M).",
        int,
    ),
    Setting(
        "pow_adaptive",
        True,
        "Proof of work adapts to provisioning pressure (false: always the maximum).",
        _bool,
    ),
    Setting(
        "pow_min_work",
        300_000,
        "Proof of work: hashes asked when the platform and the address are idle.",
        int,
    ),
    Setting(
        "pow_pressure_window",
        600,
        "Seconds of recent account creations that set the proof of work's difficulty.",
        int,
    ),
    Setting(
        "pow_busy_platform",
        100,
        "Accounts created platform-wide within the window at which the work reaches its maximum.",
        int,
    ),
    Setting(
        "pow_busy_address",
        5,
        "Accounts created from one address within the window at which its work reaches the "
        "maximum.",
        int,
    ),
    Setting("pow_samples", 16, "Proof of work: segments the server verifies.", int),
    Setting("challenge_ttl", 120, "Seconds a proof-of-work challenge stays valid.", int),
    Setting(
        "challenges_per_minute", 30, "Challenges one client address may request a minute.", int
    ),
    Setting(
        "accounts_per_hour", 20, "Temporary accounts one client address may create an hour.", int
    ),
    Setting("max_live_temporary", 10000, "Global cap on live temporary accounts.", int),
    Setting("max_upload_bytes", 10 * 1024 * 1024, "Largest accepted Worker upload, in bytes.", int),
    Setting(
        "quota_bytes_temporary",
        100 * 1024 * 1024,
        "Bytes a temporary account may store: Workers' code, KV entries, asset files.",
        int,
    ),
    Setting(
        "quota_bytes_permanent",
        1024 * 1024 * 1024,
        "Bytes a permanent account may store: Workers' code, KV entries, asset files.",
        int,
    ),
    Setting(
        "quota_versions_temporary",
        10,
        "Versions kept per Worker (temporary account); uploads prune the oldest undeployed.",
        int,
    ),
    Setting(
        "quota_versions_permanent",
        100,
        "Versions kept per Worker (permanent account); uploads prune the oldest undeployed.",
        int,
    ),
    Setting("quota_workers_temporary", 50, "Workers per temporary account.", int),
    Setting("quota_workers_permanent", 500, "Workers per permanent account.", int),
    Setting("quota_kv_namespaces_temporary", 20, "KV namespaces per temporary account.", int),
    Setting("quota_kv_namespaces_permanent", 200, "KV namespaces per permanent account.", int),
    Setting(
        "quota_kv_keys_temporary",
        10_000,
        "Live KV keys per temporary account, over all its namespaces.",
        int,
    ),
    Setting(
        "quota_kv_keys_permanent",
        1_000_000,
        "Live KV keys per permanent account, over all its namespaces.",
        int,
    ),
    Setting(
        "quota_asset_files_temporary",
        10_000,
        "Static asset files stored per temporary account.",
        int,
    ),
    Setting(
        "quota_asset_files_permanent",
        200_000,
        "Static asset files stored per permanent account.",
        int,
    ),
    Setting("quota_d1_databases_temporary", 10, "D1 databases per temporary account.", int),
    Setting("quota_d1_databases_permanent", 50, "D1 databases per permanent account.", int),
    Setting(
        "d1_max_database_bytes_temporary",
        50 * 1024 * 1024,
        "Largest D1 database (its SQLite file) of a temporary account, in bytes.",
        int,
    ),
    Setting(
        "d1_max_database_bytes_permanent",
        500 * 1024 * 1024,
        "Largest D1 database (its SQLite file) of a permanent account, in bytes.",
        int,
    ),
    Setting(
        "d1_query_timeout_ms_temporary",
        5_000,
        "Milliseconds one D1 request (a query, a batch, an imported file) of a temporary "
        "account may run before it is cancelled and rolled back.",
        int,
    ),
    Setting(
        "d1_query_timeout_ms_permanent",
        30_000,
        "Milliseconds one D1 request of a permanent account may run before it is cancelled.",
        int,
    ),
    Setting("max_kv_value_bytes", 25 * 1024 * 1024, "Largest KV value, in bytes.", int),
    Setting(
        "max_r2_object_bytes",
        100 * 1024 * 1024,
        "Largest R2 object (one PUT, one part, or a completed multipart upload), in bytes.",
        int,
    ),
    Setting(
        "r2_uploads_per_account",
        2,
        "R2 object bodies (PUTs, parts) over 1 MiB one account may send at once; past it 429.",
        int,
    ),
    Setting(
        "r2_upload_memory_bytes",
        512 * 1024 * 1024,
        "R2 object bodies held in memory server-wide, in bytes (by declared or received size); "
        "past it 429.",
        int,
    ),
    Setting("quota_r2_buckets_temporary", 10, "R2 buckets per temporary account.", int),
    Setting("quota_r2_buckets_permanent", 1000, "R2 buckets per permanent account.", int),
    Setting(
        "max_json_body_bytes",
        1024 * 1024,
        "Largest JSON body of the API's small requests (secrets, deployments, settings, tokens).",
        int,
    ),
    Setting(
        "max_manifest_body_bytes",
        8 * 1024 * 1024,
        "Largest static-assets manifest body (up to 20,000 files' paths and hashes), in bytes.",
        int,
    ),
    Setting(
        "max_asset_body_bytes",
        60 * 1024 * 1024,
        "Largest static-assets upload request: a bucket of up to 40 MiB, base64-encoded.",
        int,
    ),
    Setting(
        "max_kv_bulk_bytes",
        100 * 1024 * 1024,
        "Largest KV bulk request body, in bytes (Cloudflare: 100 MB).",
        int,
    ),
    Setting("max_kv_bulk_items", 10_000, "Keys in one KV bulk request (Cloudflare: 10,000).", int),
    Setting(
        "max_form_body_bytes",
        64 * 1024,
        "Largest form body (the pages' forms, OAuth device flow), in bytes.",
        int,
    ),
    Setting(
        "terms_url",
        "https://mayfly.invalid/terms",
        "Terms of service the agent accepts when provisioning.",
    ),
    Setting("privacy_url", "https://mayfly.invalid/privacy", "Privacy policy URL."),
    Setting(
        "forwarded_allow_ips",
        "",
        "Comma-separated addresses (or *) of trusted reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty (the default): every limit keys on the peer.",
    ),
    Setting(
        "connections_per_address",
        128,
        "Connections one client address (IPv6: its /64) may hold open to the public API at once; "
        "past it a new one gets 429 and is closed. Loopback peers and --forwarded-allow-ips "
        "proxies are not counted; 0: no limit.",
        int,
    ),
    Setting(
        "request_head_timeout",
        20.0,
        "Seconds a public API connection has to send a request's line and headers (from when it "
        "opens, or the request's first byte); past it 408 and closed. 0: no limit.",
        float,
    ),
    Setting(
        "signups_per_hour", 20, "Sign-ups one client address (IPv6: its /64) may make an hour.", int
    ),
    Setting("signups_per_minute_total", 60, "Sign-ups the whole server accepts a minute.", int),
    Setting("logins_per_minute", 30, "Log-in attempts one client address may make a minute.", int),
    Setting(
        "logins_per_minute_total", 600, "Log-in attempts the whole server accepts a minute.", int
    ),
    Setting(
        "login_failures_per_email",
        5,
        "Failed log-ins for one e-mail address from one client address in 15 minutes before "
        "that pair waits (other addresses can still log in).",
        int,
    ),
    Setting(
        "login_failures_per_address",
        30,
        "Failed log-ins from one client address in 15 minutes, over all e-mail addresses, "
        "before it waits.",
        int,
    ),
    Setting(
        "device_codes_per_hour",
        30,
        "`mayfly login` device codes one client address may request an hour.",
        int,
    ),
    Setting(
        "device_codes_per_minute_total",
        120,
        "`mayfly login` device codes the whole server issues a minute.",
        int,
    ),
    Setting(
        "password_hash_threads",
        1,
        "Threads that hash and check passwords (argon2), apart from the API's threads.",
        int,
    ),
    Setting(
        "password_hash_queue",
        8,
        "Password checks that may wait for those threads; beyond it, 429 with Retry-After.",
        int,
    ),
    Setting("shards", 2, "Number of workerd shard processes.", int),
    Setting(
        "shard_memory",
        1024,
        "Memory budget of a shard in MiB; above it the shard is recycled (replaced without "
        "dropping requests).",
        int,
    ),
    Setting(
        "shard_memory_ceiling",
        0,
        "Memory in MiB above which a shard is killed at once (it grows too fast to be recycled); "
        "0: 1.5 × shard-memory.",
        int,
    ),
    Setting(
        "shard_isolates",
        1000,
        "Workers a shard may hold loaded; at this many it is recycled (workerd never unloads one "
        "and crashes at ~1,900-4,000); 0: no limit.",
        int,
    ),
    Setting(
        "cpu_limit_ms",
        1500,
        "CPU a Worker request may hold a shard's event loop for, in ms; then the shard is killed.",
        int,
    ),
    Setting("request_timeout", 30.0, "Wall-clock limit of one Worker request, in seconds.", float),
    Setting(
        "wait_until_limit",
        30.0,
        "Seconds a request's ctx.waitUntil work may run after its response (Cloudflare's limit).",
        float,
    ),
    Setting(
        "subrequests",
        1000,
        "Subrequests (fetch() and connect() to the internet) one Worker version may have open or "
        "waiting at once on a shard; one more fails with 'Too many subrequests.' (Cloudflare's "
        "paid-plan count per invocation).",
        int,
    ),
    Setting(
        "outbound_connections",
        64,
        "Outbound connections one Worker version may have open at once on a shard; further "
        "subrequests wait for one to close.",
        int,
    ),
    Setting(
        "account_outbound_connections",
        256,
        "Outbound connections all Workers of one account may have open at once on a shard; "
        "further subrequests wait for one to close.",
        int,
    ),
    Setting(
        "shard_outbound_connections",
        0,
        "Outbound connections a shard may have open at once, all accounts together; once half "
        "are open, an account over its fair share of the other half waits. 0: half the shard's "
        "descriptor limit.",
        int,
    ),
    Setting(
        "quarantine_cooldown",
        60.0,
        "Seconds a Worker that took a shard down is quarantined (503) the first time; doubles on "
        "each repeat.",
        float,
    ),
    Setting("quarantine_max", 3600.0, "Longest quarantine, in seconds.", float),
    Setting(
        "quarantine_decay",
        3600.0,
        "Quiet seconds after a quarantine ends that forgive one repeat (the cooldown halves).",
        float,
    ),
    Setting(
        "quarantine_window",
        600.0,
        "Seconds within which a second ambiguous incident naming the same Worker quarantines it.",
        float,
    ),
    Setting(
        "quarantine_account_workers",
        2,
        "Distinct Workers of one account quarantined (each found guilty of taking a shard down) "
        "within --quarantine-account-window that quarantine the whole account; 0: never.",
        int,
    ),
    Setting(
        "quarantine_account_window",
        86400.0,
        "Seconds within which --quarantine-account-workers guilty Workers of one account "
        "quarantine it.",
        float,
    ),
    Setting(
        "quarantine_account_cooldown",
        600.0,
        "Seconds a quarantined account's Workers answer 503 (and it cannot deploy) the first "
        "time; doubles on each repeat.",
        float,
    ),
    Setting("quarantine_account_max", 86400.0, "Longest account quarantine, in seconds.", float),
    Setting("runtime", True, "Start the workerd data plane (disable for API-only nodes).", _bool),
    Setting(
        "role",
        "all",
        "What this node runs: all (API, pages, reaper and data plane), api (no data plane), "
        "dataplane (shards and the Workers listener only, asking --control-plane-url).",
    ),
    Setting(
        "cluster_secret",
        "",
        "Secret of the internal API shared by API replicas and data-plane nodes; default a "
        "per-start secret (internal API on loopback only). Required with --internal-listen and "
        "--role dataplane.",
    ),
    Setting(
        "internal_listen",
        "",
        "host:port of the internal API, for data-plane nodes on other machines (private network "
        "only); default a random loopback port.",
    ),
    Setting(
        "control_plane_url",
        "",
        "With --role dataplane: the control plane's internal API, http://host:port (an API "
        "replica's --internal-listen, or a proxy in front of several).",
    ),
    Setting(
        "ack_timeout",
        2.0,
        "Seconds an API replica waits for every live data-plane node to acknowledge an "
        "invalidation before it marks the silent ones (they drop their route caches).",
        float,
    ),
    Setting("log_level", "info", "Log level: debug, info, warning, error."),
    Setting(
        "log_format",
        "text",
        "Log format: text (one readable line per entry) or json (one JSON object per line: "
        "time, level, logger, message and the entry's extra fields).",
    ),
    Setting(
        "metrics_port",
        0,
        "Port of the Prometheus metrics (/metrics), on its own listener at --host; 0: off.",
        int,
    ),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}


def default(name: str) -> Any:
    """The declared default of setting `name` (the Settings dataclass takes its defaults here)."""
    return _DEFAULTS[name]
