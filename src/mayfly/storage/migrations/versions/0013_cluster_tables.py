"""cluster_nodes, cluster_limit_hits, cluster_tails: the coordination state of several nodes on one
PostgreSQL, which earlier versions created at start outside the migrations (CREATE TABLE IF NOT
EXISTS). A table already there is kept, its constraints renamed to the naming convention's."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"

# The names PostgreSQL gave the constraints of the tables created outside the migrations.
LEGACY_NAMES = {
    "cluster_nodes": {"cluster_nodes_pkey": "pk_cluster_nodes"},
    "cluster_limit_hits": {},
    "cluster_tails": {
        "cluster_tails_pkey": "pk_cluster_tails",
        "cluster_tails_token_hash_key": "uq_cluster_tails_token_hash",
    },
}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for table, renames in LEGACY_NAMES.items():
        if table in existing:
            _adopt(table, renames)
            continue
        if table == "cluster_nodes":
            _create_nodes()
        elif table == "cluster_limit_hits":
            _create_limit_hits()
        else:
            _create_tails()


def _adopt(table: str, renames: dict[str, str]) -> None:
    inspector = sa.inspect(op.get_bind())
    names = {inspector.get_pk_constraint(table).get("name")}
    names |= {uq["name"] for uq in inspector.get_unique_constraints(table)}
    for old, new in renames.items():
        if old in names:
            op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{old}" TO "{new}"')


def _create_nodes() -> None:
    op.create_table(
        "cluster_nodes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("must_flush", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_nodes")),
    )


def _create_limit_hits() -> None:
    op.create_table(
        "cluster_limit_hits",
        sa.Column("limiter", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
    )
    op.create_index(
        "ix_cluster_limit_hits_key", "cluster_limit_hits", ["limiter", "key", "at"], unique=False
    )


def _create_tails() -> None:
    op.create_table(
        "cluster_tails",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("script", sa.String(length=128), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_tails")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_cluster_tails_token_hash")),
    )
    op.create_index(
        "ix_cluster_tails_script", "cluster_tails", ["account_id", "script"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_cluster_tails_script", table_name="cluster_tails")
    op.drop_table("cluster_tails")
    op.drop_index("ix_cluster_limit_hits_key", table_name="cluster_limit_hits")
    op.drop_table("cluster_limit_hits")
    op.drop_table("cluster_nodes")
