"""kv_usage: each account's KV entries and bytes, kept by triggers on kv_entries, so that quota
checks read one row instead of aggregating every entry of the account (326 ms a put at 100,000
keys on SQLite). Triggers follow every path that writes kv_entries (puts, deletes, the reaper,
claims that move entries) without each having to remember it; a row whose account has no entry
left is deleted.

SQLite drops a table's triggers when batch_alter_table recreates it: a later migration that
batch-alters kv_entries must create them again (`create_triggers`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

SQLITE_SIZE = "length({row}.key) + length({row}.value) + coalesce(length({row}.metadata), 0)"
POSTGRES_SIZE = (
    "length({row}.key) + length({row}.value) + coalesce(length({row}.metadata::text), 0)"
)

# What a row of kv_entries adds to its account's usage (NEW), and takes away (OLD).
SQLITE_ADD = f"""
        INSERT INTO kv_usage (account_id, entries, stored_bytes)
        VALUES (NEW.account_id, 1, {SQLITE_SIZE.format(row="NEW")})
        ON CONFLICT (account_id) DO UPDATE SET
            entries = entries + 1, stored_bytes = stored_bytes + excluded.stored_bytes;"""
SQLITE_REMOVE = f"""
        UPDATE kv_usage SET
            entries = entries - 1,
            stored_bytes = stored_bytes - ({SQLITE_SIZE.format(row="OLD")})
        WHERE account_id = OLD.account_id;
        DELETE FROM kv_usage WHERE account_id = OLD.account_id AND entries <= 0;"""


def _sqlite_trigger(name: str, event: str, body: str) -> str:
    return f"""
    CREATE TRIGGER {name} AFTER {event} ON kv_entries BEGIN{body}
    END
    """


SQLITE_TRIGGERS = [
    _sqlite_trigger("kv_usage_insert", "INSERT", SQLITE_ADD),
    _sqlite_trigger("kv_usage_delete", "DELETE", SQLITE_REMOVE),
    _sqlite_trigger("kv_usage_update", "UPDATE", SQLITE_REMOVE + SQLITE_ADD),
]

POSTGRES_TRIGGERS = [
    f"""
    CREATE OR REPLACE FUNCTION kv_usage_track() RETURNS trigger AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE kv_usage SET
                entries = entries - 1,
                stored_bytes = stored_bytes - ({POSTGRES_SIZE.format(row="OLD")})
            WHERE account_id = OLD.account_id;
            DELETE FROM kv_usage WHERE account_id = OLD.account_id AND entries <= 0;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO kv_usage (account_id, entries, stored_bytes)
            VALUES (NEW.account_id, 1, {POSTGRES_SIZE.format(row="NEW")})
            ON CONFLICT (account_id) DO UPDATE SET
                entries = kv_usage.entries + 1,
                stored_bytes = kv_usage.stored_bytes + EXCLUDED.stored_bytes;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER kv_usage_track AFTER INSERT OR UPDATE OR DELETE ON kv_entries
    FOR EACH ROW EXECUTE FUNCTION kv_usage_track()
    """,
]


def create_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "kv_usage",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_kv_usage")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    size = (POSTGRES_SIZE if postgres else SQLITE_SIZE).format(row="kv_entries")
    op.execute(
        "INSERT INTO kv_usage (account_id, entries, stored_bytes) "
        f"SELECT account_id, count(*), sum({size}) FROM kv_entries GROUP BY account_id"
    )
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS kv_usage_track ON kv_entries")
        op.execute("DROP FUNCTION IF EXISTS kv_usage_track()")
    else:
        for name in ("kv_usage_insert", "kv_usage_delete", "kv_usage_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("kv_usage")
