"""What the public API asks of its clients and allows each address: terms, proxies, rate limits."""

from __future__ import annotations

from mayfly.settings_table.setting import Setting

CLIENTS: tuple[Setting, ...] = (
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
)
