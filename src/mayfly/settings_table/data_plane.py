"""The data plane: shards, what a request and a version may use, quarantine."""

from __future__ import annotations

from mayfly.settings_table.setting import Setting

DATA_PLANE: tuple[Setting, ...] = (
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
)
