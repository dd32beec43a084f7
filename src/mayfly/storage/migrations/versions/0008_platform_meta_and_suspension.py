"""platform_meta (facts about the installation, e.g. the platform key's fingerprint, so replicas
with another key refuse to start) and accounts.suspended_at (an operator's suspension)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "platform_meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_platform_meta")),
    )
    op.add_column("accounts", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("suspended_at")
    op.drop_table("platform_meta")
