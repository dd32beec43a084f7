"""r2: buckets, objects (blobs of the account), multipart uploads and their parts"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def _key() -> sa.types.TypeEngine[str]:
    return sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "r2_buckets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("storage_class", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_r2_buckets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_r2_buckets")),
        sa.UniqueConstraint("account_id", "name", name="uq_r2_buckets_account_name"),
    )
    op.create_index(op.f("ix_r2_buckets_account_id"), "r2_buckets", ["account_id"], unique=False)
    op.create_table(
        "r2_objects",
        sa.Column("bucket_id", sa.String(length=32), nullable=False),
        sa.Column("key", _key(), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("uploaded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_metadata", sa.JSON(), nullable=False),
        sa.Column("custom_metadata", sa.JSON(), nullable=False),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_r2_objects_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["r2_buckets.id"], name=op.f("fk_r2_objects_bucket_id_r2_buckets")
        ),
        sa.PrimaryKeyConstraint("bucket_id", "key", name=op.f("pk_r2_objects")),
    )
    op.create_index(
        "ix_r2_objects_account_blob", "r2_objects", ["account_id", "blob_sha256"], unique=False
    )
    op.create_table(
        "r2_uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("bucket_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("key", _key(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_metadata", sa.JSON(), nullable=False),
        sa.Column("custom_metadata", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_r2_uploads_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["r2_buckets.id"], name=op.f("fk_r2_uploads_bucket_id_r2_buckets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_r2_uploads")),
    )
    op.create_index(op.f("ix_r2_uploads_account_id"), "r2_uploads", ["account_id"], unique=False)
    op.create_index(op.f("ix_r2_uploads_bucket_id"), "r2_uploads", ["bucket_id"], unique=False)
    op.create_table(
        "r2_parts",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_r2_parts_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["r2_uploads.id"], name=op.f("fk_r2_parts_upload_id_r2_uploads")
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_r2_parts")),
    )
    op.create_index(op.f("ix_r2_parts_account_id"), "r2_parts", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_r2_parts_account_id"), table_name="r2_parts")
    op.drop_table("r2_parts")
    op.drop_index(op.f("ix_r2_uploads_bucket_id"), table_name="r2_uploads")
    op.drop_index(op.f("ix_r2_uploads_account_id"), table_name="r2_uploads")
    op.drop_table("r2_uploads")
    op.drop_index("ix_r2_objects_account_blob", table_name="r2_objects")
    op.drop_table("r2_objects")
    op.drop_index(op.f("ix_r2_buckets_account_id"), table_name="r2_buckets")
    op.drop_table("r2_buckets")
