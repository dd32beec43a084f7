"""What an account may store and send at once: quotas and the largest bodies."""

from __future__ import annotations

from mayfly.settings_table.setting import Setting

QUOTAS: tuple[Setting, ...] = (
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
)
