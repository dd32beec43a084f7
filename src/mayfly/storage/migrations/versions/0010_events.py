"""events: codes for workshops, and the event that provisioned each temporary account"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("accounts_max", sa.Integer(), nullable=False),
        sa.Column("accounts_used", sa.Integer(), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organiser_email", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("code", name=op.f("uq_events_code")),
    )
    op.create_index(op.f("ix_events_organiser_email"), "events", ["organiser_email"], unique=False)
    op.add_column("accounts", sa.Column("event_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_accounts_event_id"), "accounts", ["event_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_accounts_event_id"), table_name="accounts")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("event_id")
    op.drop_index(op.f("ix_events_organiser_email"), table_name="events")
    op.drop_table("events")
