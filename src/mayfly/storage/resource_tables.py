"""R2's buckets, objects and multipart uploads, and D1's databases: part of the schema in
storage/tables.py (which imports this module, so that `metadata` holds them)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from mayfly.storage.columns import Digest, Id, Timestamp, Uuid, account_ref, key, required
from mayfly.storage.tables import metadata

# -- R2 buckets (issue 15) ----------------------------------------------------------------------

# Object keys compare as bytes (listing by prefix and cursor is a byte range), as kv_entries.key.
R2Key = String(1024).with_variant(String(1024, collation="C"), "postgresql")

r2_buckets = Table(
    "r2_buckets",
    metadata,
    # `id` is what a binding names (the platform fixes it); `name` is the account's own.
    key("id", Id),
    account_ref(index=True),
    required("name", String(64)),
    required("created_at", Timestamp),
    required("storage_class", String(32)),
    UniqueConstraint("account_id", "name", name="uq_r2_buckets_account_name"),
)

r2_objects = Table(
    "r2_objects",
    metadata,
    # The bytes are a blob of the account (content-addressed: equal objects share one).
    key("bucket_id", Id, ForeignKey("r2_buckets.id")),
    key("key", R2Key),
    account_ref(),
    required("blob_sha256", Digest),
    required("size", BigInteger),
    required("etag", String(64)),  # MD5 hex, or `<md5 of parts' md5s>-<parts>`
    required("version", String(32)),
    required("uploaded", Timestamp),
    required("http_metadata", JSON),
    required("custom_metadata", JSON),
    required("checksums", JSON),
    Index("ix_r2_objects_account_blob", "account_id", "blob_sha256"),
)

r2_uploads = Table(
    "r2_uploads",
    metadata,
    # A multipart upload in progress; its parts are blobs until it completes or is aborted.
    key("id", String(64)),
    required("bucket_id", Id, ForeignKey("r2_buckets.id"), index=True),
    account_ref(index=True),
    required("key", R2Key),
    required("created_at", Timestamp),
    required("http_metadata", JSON),
    required("custom_metadata", JSON),
)

r2_parts = Table(
    "r2_parts",
    metadata,
    key("upload_id", String(64), ForeignKey("r2_uploads.id")),
    key("part_number", Integer),
    account_ref(index=True),
    required("blob_sha256", Digest),
    required("size", BigInteger),
    required("etag", String(64)),
)

# -- D1 databases (issue 15) --------------------------------------------------------------------

d1_databases = Table(
    "d1_databases",
    metadata,
    # `id` (a UUID, as D1's) is what a binding names and names the SQLite file under the data
    # dir (d1/<id>.sqlite3); `size_bytes` is that file's size after the last write, for quotas.
    key("id", Uuid),
    account_ref(index=True),
    required("name", String(64)),
    required("created_at", Timestamp),
    required("size_bytes", BigInteger),
    UniqueConstraint("account_id", "name", name="uq_d1_databases_account_name"),
)
