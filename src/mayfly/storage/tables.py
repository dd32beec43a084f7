"""The schema. Alembic migrations in `migrations/` create exactly this (a test compares them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = DateTime(timezone=True)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # temporary | permanent
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("claim_token_hash", String(64), nullable=True, unique=True),
    Column("claimed_at", Timestamp, nullable=True),
    Column("owner_user_id", String(32), nullable=True),
    Column("created_by_ip", String(64), nullable=True),
    # Set by `mayfly admin account suspend`: its Workers answer 503, its tokens cannot write.
    Column("suspended_at", Timestamp, nullable=True),
    # The event whose code provisioned this temporary account (`mayfly admin event`), if any.
    Column("event_id", String(32), nullable=True, index=True),
    Index("ix_accounts_kind_expires_at", "kind", "expires_at"),
)

# Events (workshops): a code whose accounts count against the event's budget, not the address's.
events = Table(
    "events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("code", String(64), nullable=False, unique=True),
    Column("accounts_max", Integer, nullable=False),
    Column("accounts_used", Integer, nullable=False),
    Column("ttl", Integer, nullable=False),  # seconds each of its accounts lives
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),  # no new accounts after
    Column("ended_at", Timestamp, nullable=True),
    Column("organiser_email", String(320), nullable=True, index=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("role", String(32), nullable=False),
    Index("ix_memberships_account_id", "account_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("user_id", String(32), nullable=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # temporary | permanent
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Index("ix_api_tokens_user_id", "user_id"),
    Index("ix_api_tokens_account_id", "account_id"),
)

scripts = Table(
    "scripts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("current_deployment_id", String(36), nullable=True),
    Column("current_version_id", String(36), nullable=True),
    Column("subdomain_enabled", Boolean, nullable=False, default=True),
    Column("settings", JSON, nullable=False),
    UniqueConstraint("account_id", "name", name="uq_scripts_account_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("script_id", String(32), ForeignKey("scripts.id"), nullable=False, index=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("main_module", String(512), nullable=False),
    Column("compatibility_date", String(10), nullable=False),
    Column("compatibility_flags", JSON, nullable=False),
    Column("bindings", JSON, nullable=False),  # secret values encrypted
    Column("annotations", JSON, nullable=False),
    Column("source", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("assets", JSON, nullable=True),  # {config, manifest {path: hash}} or null
    # Stored at upload so that listings never re-read or re-scan the modules' blobs.
    Column("handlers", JSON, nullable=True),  # null only for versions stored before 0004
    Column("author", String(320), nullable=True),
    Index("ix_versions_script_id_number", "script_id", "number"),
)

modules = Table(
    "modules",
    metadata,
    Column("version_id", String(36), ForeignKey("versions.id"), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("kind", String(16), nullable=False),  # esm cjs text data wasm json sourcemap
    Column("blob_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("script_id", String(32), ForeignKey("scripts.id"), nullable=False, index=True),
    # Indexed for the foreign-key checks when accounts and versions are deleted.
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("version_id", String(36), ForeignKey("versions.id"), nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("source", String(32), nullable=False),
    Column("author", String(320), nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    # Set only with the database blob backend (PostgreSQL at scale); else the bytes live in files.
    Column("data", LargeBinary, nullable=True),
)

kv_namespaces = Table(
    "kv_namespaces",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("title", String(512), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("account_id", "title", name="uq_kv_namespaces_account_title"),
)

kv_entries = Table(
    "kv_entries",
    metadata,
    Column("namespace_id", String(32), ForeignKey("kv_namespaces.id"), primary_key=True),
    # Keys compare as bytes (prefix listing is a byte range): COLLATE "C" on PostgreSQL, SQLite's
    # default BINARY elsewhere.
    Column(
        "key",
        String(512).with_variant(String(512, collation="C"), "postgresql"),
        primary_key=True,
    ),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("value", LargeBinary, nullable=False),
    Column("metadata", JSON, nullable=True),
    Column("expiration", BigInteger, nullable=True, index=True),
)

kv_usage = Table(
    "kv_usage",
    metadata,
    # Each account's KV entries and their bytes (key + value + metadata text), kept by triggers on
    # kv_entries (migration 0007) for quota checks; no row when the account has no entry.
    Column("account_id", String(32), primary_key=True),
    Column("entries", BigInteger, nullable=False),
    Column("stored_bytes", BigInteger, nullable=False),
)

tombstones = Table(
    "tombstones",
    metadata,
    Column("account_id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expired_at", Timestamp, nullable=True),
    Column("deleted_at", Timestamp, nullable=False),
    Column("keep_until", Timestamp, nullable=False, index=True),
    # So that the claim page can say "expired" (410) rather than "unknown" after deletion.
    Column("claim_token_hash", String(64), nullable=True, index=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), nullable=False, index=True),
    Column("event", String(64), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("created_at", Timestamp, nullable=False, index=True),
    Column("details", JSON, nullable=False),
)

used_challenges = Table(
    "used_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("expires_at", Timestamp, nullable=False, index=True),
)


# -- humans: sessions, device authorizations, moved Workers ---------------------------------------

sessions = Table(
    "sessions",
    metadata,
    # SHA-256 of the random cookie value: a database leak does not hand out sessions.
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False, index=True),
)

device_authorizations = Table(
    "device_authorizations",
    metadata,
    # OAuth 2.0 device authorization grant (RFC 8628); both codes are stored hashed.
    Column("device_code_hash", String(64), primary_key=True),
    Column("user_code_hash", String(64), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending approved denied issued
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False, index=True),
    Column("interval", Integer, nullable=False),
    Column("last_polled_at", Timestamp, nullable=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=True),
    Column("account_id", String(32), nullable=True),
)

moved_hosts = Table(
    "moved_hosts",
    metadata,
    # A Worker moved into another account at claim: its old host answers 410 naming the new URL.
    Column("old_host", String(255), primary_key=True),
    Column("new_url", String(512), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("keep_until", Timestamp, nullable=False, index=True),
)


# -- Workers Static Assets ----------------------------------------------------------------------

asset_files = Table(
    "asset_files",
    metadata,
    # `hash` is the client's opaque key (wrangler: BLAKE3 of base64 + extension), per account only.
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("hash", String(64), primary_key=True),
    Column("blob_sha256", String(64), nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=False),
)

asset_upload_sessions = Table(
    "asset_upload_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("script", String(64), nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("missing", JSON, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False, index=True),
)


# -- incidents and quarantine (issue 9) ---------------------------------------------------------

incidents = Table(
    "incidents",
    metadata,
    # One row per suspect Worker of a shard the data plane killed; rows sharing `incident_id` are
    # one kill. Kept for the uncertain-suspect window (services/workers/quarantine.py), then purged.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("script", String(64), nullable=False),
    Column("version_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),  # unresponsive | memory | crashed
    Column("certain", Boolean, nullable=False),
    Column("prime", Boolean, nullable=False),  # the data plane's prime suspect of that kill
    Column("shard", String(64), nullable=False),
    Column("detail", String(1000), nullable=False),
    Column("created_at", Timestamp, nullable=False, index=True),
    Index("ix_incidents_account_script", "account_id", "script", "created_at"),
)

quarantines = Table(
    "quarantines",
    metadata,
    # Keyed by the Worker (account, script name), not the version: a new deploy does not lift it.
    # The row outlives the quarantine: `strikes` (decaying) doubles the next cooldown.
    Column("account_id", String(32), primary_key=True),
    Column("script", String(64), primary_key=True),
    Column("version_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("detail", String(1000), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("until", Timestamp, nullable=False),
    Column("strikes", Integer, nullable=False),
    Column("lifted_at", Timestamp, nullable=True),
    Column("lifted_by", String(320), nullable=True),
)

# -- operating (issue 13) -------------------------------------------------------------------------

platform_meta = Table(
    "platform_meta",
    metadata,
    # Facts about the installation every replica checks, e.g. `key_fingerprint` (services/core/crypto).
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# -- cron triggers (issue 11) -------------------------------------------------------------------

worker_schedules = Table(
    "worker_schedules",
    metadata,
    # A Worker's cron triggers, replaced as a whole by PUT …/schedules. `next_run_at` is claimed by
    # moving it forward in the same statement that reads it, so each run fires once per cluster.
    Column("script_id", String(32), ForeignKey("scripts.id"), primary_key=True),
    Column("cron", String(100), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("next_run_at", Timestamp, nullable=False, index=True),
    Column("last_run_at", Timestamp, nullable=True),
)

# -- R2 buckets (issue 15) ----------------------------------------------------------------------

# Object keys compare as bytes (listing by prefix and cursor is a byte range), as kv_entries.key.
R2Key = String(1024).with_variant(String(1024, collation="C"), "postgresql")

r2_buckets = Table(
    "r2_buckets",
    metadata,
    # `id` is what a binding names (the platform fixes it); `name` is the account's own.
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("storage_class", String(32), nullable=False),
    UniqueConstraint("account_id", "name", name="uq_r2_buckets_account_name"),
)

r2_objects = Table(
    "r2_objects",
    metadata,
    # The bytes are a blob of the account (content-addressed: equal objects share one).
    Column("bucket_id", String(32), ForeignKey("r2_buckets.id"), primary_key=True),
    Column("key", R2Key, primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("blob_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),  # MD5 hex, or `<md5 of parts' md5s>-<parts>`
    Column("version", String(32), nullable=False),
    Column("uploaded", Timestamp, nullable=False),
    Column("http_metadata", JSON, nullable=False),
    Column("custom_metadata", JSON, nullable=False),
    Column("checksums", JSON, nullable=False),
    Index("ix_r2_objects_account_blob", "account_id", "blob_sha256"),
)

r2_uploads = Table(
    "r2_uploads",
    metadata,
    # A multipart upload in progress; its parts are blobs until it completes or is aborted.
    Column("id", String(64), primary_key=True),
    Column("bucket_id", String(32), ForeignKey("r2_buckets.id"), nullable=False, index=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key", R2Key, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("http_metadata", JSON, nullable=False),
    Column("custom_metadata", JSON, nullable=False),
)

r2_parts = Table(
    "r2_parts",
    metadata,
    Column("upload_id", String(64), ForeignKey("r2_uploads.id"), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("blob_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
)

# -- D1 databases (issue 15) --------------------------------------------------------------------

d1_databases = Table(
    "d1_databases",
    metadata,
    # `id` (a UUID, as D1's) is what a binding names and names the SQLite file under the data
    # dir (d1/<id>.sqlite3); `size_bytes` is that file's size after the last write, for quotas.
    Column("id", String(36), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    UniqueConstraint("account_id", "name", name="uq_d1_databases_account_name"),
)

# -- Cluster coordination (storage/cluster_tables.py registers its tables on `metadata`) --------

from mayfly.storage import cluster_tables as cluster_tables  # noqa: E402
