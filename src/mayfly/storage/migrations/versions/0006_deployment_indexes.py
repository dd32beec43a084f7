"""deployment indexes: deleting an account or a version checks deployments' foreign keys, which
scanned the whole table per deleted row without them (the reaper's batches, version pruning)"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_deployments_version_id", ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_deployments_version_id")
        batch_op.drop_index("ix_deployments_account_id")
