"""Where the server listens and keeps its data; accounts' lifetimes, cron, proof of work."""

from __future__ import annotations

from mayfly.settings_table.setting import Setting, parse_bool

SERVER: tuple[Setting, ...] = (
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
        parse_bool,
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
    Setting(
        "address_taint_seconds",
        86400.0,
        "Seconds a client address (IPv6: its /64) stays tainted once a Worker of an unclaimed "
        "temporary account provisioned from it was quarantined: its new temporary accounts cost "
        "the maximum proof of work and at most --tainted-accounts-per-hour; 0: never taint.",
        float,
    ),
    Setting(
        "tainted_accounts_per_hour",
        2,
        "Temporary accounts a tainted client address may create an hour (instead of "
        "--accounts-per-hour).",
        int,
    ),
    Setting("max_live_temporary", 10000, "Global cap on live temporary accounts.", int),
)
