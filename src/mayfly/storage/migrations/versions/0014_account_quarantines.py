"""account_quarantines: accounts whose Workers were found guilty of incidents under several names"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.create_table(
        "account_quarantines",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("scripts", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_quarantines")),
    )


def downgrade() -> None:
    op.drop_table("account_quarantines")
