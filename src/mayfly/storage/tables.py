"""The schema (with resource_tables.py: R2, D1; cluster_tables.py: several nodes). The Alembic
migrations in `migrations/` create exactly this (a test compares them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from mayfly.storage.columns import (
    Digest,
    Email,
    Id,
    Timestamp,
    Uuid,
    account_ref,
    key,
    optional,
    required,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    key("id", Id),
    required("name", String(64), unique=True),
    required("kind", String(16)),  # temporary | permanent
    required("created_at", Timestamp),
    optional("expires_at", Timestamp),
    optional("claim_token_hash", Digest, unique=True),
    optional("claimed_at", Timestamp),
    optional("owner_user_id", Id),
    optional("created_by_ip", String(64)),
    # Set by `mayfly admin account suspend`: its Workers answer 503, its tokens cannot write.
    optional("suspended_at", Timestamp),
    # The event whose code provisioned this temporary account (`mayfly admin event`), if any.
    optional("event_id", Id, index=True),
    Index("ix_accounts_kind_expires_at", "kind", "expires_at"),
)

# Events (workshops): a code whose accounts count against the event's budget, not the address's.
events = Table(
    "events",
    metadata,
    key("id", Id),
    required("name", String(200)),
    required("code", String(64), unique=True),
    required("accounts_max", Integer),
    required("accounts_used", Integer),
    required("ttl", Integer),  # seconds each of its accounts lives
    required("created_at", Timestamp),
    optional("expires_at", Timestamp),  # no new accounts after
    optional("ended_at", Timestamp),
    optional("organiser_email", Email, index=True),
)

users = Table(
    "users",
    metadata,
    key("id", Id),
    required("email", Email, unique=True),
    required("password_hash", String(255)),
    required("created_at", Timestamp),
)

memberships = Table(
    "memberships",
    metadata,
    key("user_id", Id, ForeignKey("users.id")),
    account_ref(key=True),
    required("role", String(32)),
    Index("ix_memberships_account_id", "account_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    key("id", Id),
    required("token_hash", Digest, unique=True),
    account_ref(),
    optional("user_id", Id),
    required("name", String(200)),
    required("kind", String(16)),  # temporary | permanent
    required("created_at", Timestamp),
    optional("expires_at", Timestamp),
    optional("revoked_at", Timestamp),
    optional("revoked_reason", String(32)),
    Index("ix_api_tokens_user_id", "user_id"),
    Index("ix_api_tokens_account_id", "account_id"),
)

scripts = Table(
    "scripts",
    metadata,
    key("id", Id),
    account_ref(),
    required("name", String(64)),
    required("created_at", Timestamp),
    required("updated_at", Timestamp),
    optional("current_deployment_id", Uuid),
    optional("current_version_id", Uuid),
    required("subdomain_enabled", Boolean, default=True),
    required("settings", JSON),
    UniqueConstraint("account_id", "name", name="uq_scripts_account_name"),
)

versions = Table(
    "versions",
    metadata,
    key("id", Uuid),
    required("script_id", Id, ForeignKey("scripts.id"), index=True),
    account_ref(index=True),
    required("number", Integer),
    required("created_at", Timestamp),
    required("main_module", String(512)),
    required("compatibility_date", String(10)),
    required("compatibility_flags", JSON),
    required("bindings", JSON),  # secret values encrypted
    required("annotations", JSON),
    required("source", String(32)),
    required("size", BigInteger),
    optional("assets", JSON),  # {config, manifest {path: hash}} or null
    # Stored at upload so that listings never re-read or re-scan the modules' blobs.
    optional("handlers", JSON),  # null only for versions stored before 0004
    optional("author", Email),
    Index("ix_versions_script_id_number", "script_id", "number"),
)

modules = Table(
    "modules",
    metadata,
    key("version_id", Uuid, ForeignKey("versions.id")),
    key("name", String(512)),
    required("kind", String(16)),  # esm cjs text data wasm json sourcemap
    required("blob_sha256", Digest),
    required("size", BigInteger),
)

deployments = Table(
    "deployments",
    metadata,
    key("id", Uuid),
    required("script_id", Id, ForeignKey("scripts.id"), index=True),
    # Indexed for the foreign-key checks when accounts and versions are deleted.
    account_ref(index=True),
    required("version_id", Uuid, ForeignKey("versions.id"), index=True),
    required("created_at", Timestamp),
    required("annotations", JSON),
    required("source", String(32)),
    required("author", Email),
)

blobs = Table(
    "blobs",
    metadata,
    account_ref(key=True),
    key("sha256", Digest),
    required("size", BigInteger),
    # Set only with the database blob backend (PostgreSQL at scale); else the bytes live in files.
    optional("data", LargeBinary),
)

kv_namespaces = Table(
    "kv_namespaces",
    metadata,
    key("id", Id),
    account_ref(),
    required("title", String(512)),
    required("created_at", Timestamp),
    UniqueConstraint("account_id", "title", name="uq_kv_namespaces_account_title"),
)

kv_entries = Table(
    "kv_entries",
    metadata,
    key("namespace_id", Id, ForeignKey("kv_namespaces.id")),
    # Keys compare as bytes (prefix listing is a byte range): COLLATE "C" on PostgreSQL, SQLite's
    # default BINARY elsewhere.
    key("key", String(512).with_variant(String(512, collation="C"), "postgresql")),
    account_ref(index=True),
    required("value", LargeBinary),
    optional("metadata", JSON),
    optional("expiration", BigInteger, index=True),
)

kv_usage = Table(
    "kv_usage",
    metadata,
    # Each account's KV entries and their bytes (key + value + metadata text), kept by triggers on
    # kv_entries (migration 0007) for quota checks; no row when the account has no entry.
    key("account_id", Id),
    required("entries", BigInteger),
    required("stored_bytes", BigInteger),
)

tombstones = Table(
    "tombstones",
    metadata,
    key("account_id", Id),
    required("name", String(64), unique=True),
    required("created_at", Timestamp),
    optional("expired_at", Timestamp),
    required("deleted_at", Timestamp),
    required("keep_until", Timestamp, index=True),
    # So that the claim page can say "expired" (410) rather than "unknown" after deletion.
    optional("claim_token_hash", Digest, index=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    key("id", Integer, autoincrement=True),
    required("account_id", Id, index=True),
    required("event", String(64)),
    required("actor", Email),
    required("created_at", Timestamp, index=True),
    required("details", JSON),
)

used_challenges = Table(
    "used_challenges",
    metadata,
    key("id", Id),
    required("expires_at", Timestamp, index=True),
)


# -- humans: sessions, device authorizations, moved Workers ---------------------------------------

sessions = Table(
    "sessions",
    metadata,
    # SHA-256 of the random cookie value: a database leak does not hand out sessions.
    key("id_hash", Digest),
    required("user_id", Id, ForeignKey("users.id"), index=True),
    required("created_at", Timestamp),
    required("expires_at", Timestamp, index=True),
)

device_authorizations = Table(
    "device_authorizations",
    metadata,
    # OAuth 2.0 device authorization grant (RFC 8628); both codes are stored hashed.
    key("device_code_hash", Digest),
    required("user_code_hash", Digest, unique=True),
    required("client_id", String(64)),
    required("status", String(16)),  # pending approved denied issued
    required("created_at", Timestamp),
    required("expires_at", Timestamp, index=True),
    required("interval", Integer),
    optional("last_polled_at", Timestamp),
    optional("user_id", Id, ForeignKey("users.id")),
    optional("account_id", Id),
)

moved_hosts = Table(
    "moved_hosts",
    metadata,
    # A Worker moved into another account at claim: its old host answers 410 naming the new URL.
    key("old_host", String(255)),
    required("new_url", String(512)),
    required("created_at", Timestamp),
    required("keep_until", Timestamp, index=True),
)


# -- Workers Static Assets ----------------------------------------------------------------------

asset_files = Table(
    "asset_files",
    metadata,
    # `hash` is the client's opaque key (wrangler: BLAKE3 of base64 + extension), per account only.
    account_ref(key=True),
    key("hash", Digest),
    required("blob_sha256", Digest),
    optional("content_type", String(255)),
    required("size", BigInteger),
)

asset_upload_sessions = Table(
    "asset_upload_sessions",
    metadata,
    key("id", Id),
    account_ref(index=True),
    required("script", String(64)),
    required("manifest", JSON),
    required("missing", JSON),
    required("created_at", Timestamp),
    required("expires_at", Timestamp, index=True),
)


# -- incidents and quarantine (issue 9) ---------------------------------------------------------

incidents = Table(
    "incidents",
    metadata,
    # One row per suspect Worker of a shard the data plane killed; rows sharing `incident_id` are
    # one kill. Kept for the uncertain-suspect window (services/workers/quarantine.py), then purged.
    key("id", Integer, autoincrement=True),
    required("incident_id", Id),
    required("account_id", Id),
    required("script", String(64)),
    required("version_id", Uuid),
    required("kind", String(16)),  # unresponsive | memory | crashed
    required("certain", Boolean),
    required("prime", Boolean),  # the data plane's prime suspect of that kill
    required("shard", String(64)),
    required("detail", String(1000)),
    required("created_at", Timestamp, index=True),
    Index("ix_incidents_account_script", "account_id", "script", "created_at"),
)

quarantines = Table(
    "quarantines",
    metadata,
    # Keyed by the Worker (account, script name), not the version: a new deploy does not lift it.
    # The row outlives the quarantine: `strikes` (decaying) doubles the next cooldown.
    key("account_id", Id),
    key("script", String(64)),
    required("version_id", Uuid),
    required("kind", String(16)),
    required("detail", String(1000)),
    required("started_at", Timestamp),
    required("until", Timestamp),
    required("strikes", Integer),
    optional("lifted_at", Timestamp),
    optional("lifted_by", Email),
)

account_quarantines = Table(
    "account_quarantines",
    metadata,
    # An account whose Workers were found guilty under several names (services/workers/
    # quarantine.py): every Worker of it answers 503 and nothing can be deployed. Like a Worker's,
    # the row outlives the quarantine (`strikes` doubles the next cooldown; `started_at` marks the
    # verdicts it spent).
    key("account_id", Id),
    required("scripts", JSON),  # the Workers whose verdicts started it
    required("kind", String(16)),
    required("detail", String(1000)),
    required("started_at", Timestamp),
    required("until", Timestamp),
    required("strikes", Integer),
    optional("lifted_at", Timestamp),
    optional("lifted_by", Email),
)

address_taints = Table(
    "address_taints",
    metadata,
    # A client address group (accounts.created_by_ip) that provisioned an unclaimed temporary
    # account whose Worker was quarantined (services/temporary/taints.py), one row per verdict.
    # Not the account's: the row outlives it (the address answers after the account expired) and
    # is purged once `until` passed.
    key("id", Integer, autoincrement=True),
    required("address", String(64)),
    required("account_id", Id),
    required("script", String(64)),
    required("kind", String(16)),
    required("tainted_at", Timestamp),
    required("until", Timestamp, index=True),
    optional("cleared_at", Timestamp),
    optional("cleared_by", Email),
    Index("ix_address_taints_address_until", "address", "until"),
)

# -- operating (issue 13) -------------------------------------------------------------------------

platform_meta = Table(
    "platform_meta",
    metadata,
    # Facts about the installation every replica checks, e.g. `key_fingerprint` (services/core/crypto).
    key("name", String(64)),
    required("value", String(256)),
)

# -- cron triggers (issue 11) -------------------------------------------------------------------

worker_schedules = Table(
    "worker_schedules",
    metadata,
    # A Worker's cron triggers, replaced as a whole by PUT …/schedules. `next_run_at` is claimed by
    # moving it forward in the same statement that reads it, so each run fires once per cluster.
    key("script_id", Id, ForeignKey("scripts.id")),
    key("cron", String(100)),
    account_ref(index=True),
    required("created_at", Timestamp),
    required("updated_at", Timestamp),
    required("next_run_at", Timestamp, index=True),
    optional("last_run_at", Timestamp),
)

# -- R2, D1 (storage/resource_tables.py) and cluster coordination (storage/cluster_tables.py):
# those modules register their tables on `metadata`.

from mayfly.storage import cluster_tables as cluster_tables  # noqa: E402
from mayfly.storage import resource_tables as resource_tables  # noqa: E402
