"""d1_databases: each account's D1 databases (their SQLite files live under the data dir)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "d1_databases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_d1_databases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_d1_databases")),
        sa.UniqueConstraint("account_id", "name", name="uq_d1_databases_account_name"),
    )
    op.create_index(
        op.f("ix_d1_databases_account_id"), "d1_databases", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_d1_databases_account_id"), table_name="d1_databases")
    op.drop_table("d1_databases")
