"""address_taints: client addresses whose temporary accounts' Workers were quarantined"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.create_table(
        "address_taints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("script", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tainted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_taints")),
    )
    op.create_index(
        "ix_address_taints_address_until", "address_taints", ["address", "until"], unique=False
    )
    op.create_index(op.f("ix_address_taints_until"), "address_taints", ["until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("address_taints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_taints_until"))
        batch_op.drop_index("ix_address_taints_address_until")
    op.drop_table("address_taints")
