"""static assets"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:

    op.create_table(
        "asset_files",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_asset_files_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "hash", name=op.f("pk_asset_files")),
    )
    op.create_table(
        "asset_upload_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("script", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_asset_upload_sessions_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_upload_sessions")),
    )
    op.create_index(op.f("ix_asset_upload_sessions_account_id"), "asset_upload_sessions", ["account_id"], unique=False)

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assets", sa.JSON(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("assets")

    with op.batch_alter_table("asset_upload_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_upload_sessions_account_id"))

    op.drop_table("asset_upload_sessions")
    op.drop_table("asset_files")
