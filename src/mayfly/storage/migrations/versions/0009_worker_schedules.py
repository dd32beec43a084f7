"""worker_schedules: each Worker's cron triggers and when each runs next"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "worker_schedules",
        sa.Column("script_id", sa.String(length=32), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_worker_schedules_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["script_id"], ["scripts.id"], name=op.f("fk_worker_schedules_script_id_scripts")
        ),
        sa.PrimaryKeyConstraint("script_id", "cron", name=op.f("pk_worker_schedules")),
    )
    op.create_index(
        op.f("ix_worker_schedules_account_id"), "worker_schedules", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_worker_schedules_next_run_at"), "worker_schedules", ["next_run_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_schedules_next_run_at"), table_name="worker_schedules")
    op.drop_index(op.f("ix_worker_schedules_account_id"), table_name="worker_schedules")
    op.drop_table("worker_schedules")
