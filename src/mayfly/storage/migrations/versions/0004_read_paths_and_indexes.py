"""read paths and indexes: what version listings need stored at upload; indexes for the reaper's
and the purges' deletes; KV keys compared as bytes on PostgreSQL"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

INDEXES = [
    ("api_tokens", "ix_api_tokens_user_id", ["user_id"]),
    ("api_tokens", "ix_api_tokens_account_id", ["account_id"]),
    ("memberships", "ix_memberships_account_id", ["account_id"]),
    ("versions", "ix_versions_script_id_number", ["script_id", "number"]),
    ("kv_entries", "ix_kv_entries_expiration", ["expiration"]),
    ("tombstones", "ix_tombstones_keep_until", ["keep_until"]),
    ("audit_events", "ix_audit_events_created_at", ["created_at"]),
    ("used_challenges", "ix_used_challenges_expires_at", ["expires_at"]),
    ("asset_upload_sessions", "ix_asset_upload_sessions_expires_at", ["expires_at"]),
]


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handlers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("author", sa.String(length=320), nullable=True))
    # Versions stored before: the author the listing showed then (the account's), handlers stay
    # null and are detected once more when such a version is shown.
    op.execute(
        "UPDATE versions SET author = (SELECT accounts.name || CASE accounts.kind "
        "WHEN 'temporary' THEN '@temporary' ELSE '@account' END "
        "FROM accounts WHERE accounts.id = versions.account_id)"
    )
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE kv_entries ALTER COLUMN key TYPE VARCHAR(512) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE kv_entries ALTER COLUMN key TYPE VARCHAR(512) COLLATE "default"')
    for table, name, _ in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("author")
        batch_op.drop_column("handlers")
