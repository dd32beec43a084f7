"""Coordination state of several nodes on one PostgreSQL (services/operations/cluster.py): part of
the schema in storage/tables.py, kept here for that module's length. SQLite has the tables too,
unused (a single process coordinates with nobody)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Double, Index, String, Table, Text, false, func

from mayfly.storage.tables import Timestamp, metadata

# One row per running node: its role and a heartbeat written with the database's clock; a node
# that missed an acknowledgement deadline is marked `must_flush`.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("started_at", Timestamp, nullable=False, server_default=func.now()),
    Column("heartbeat_at", Timestamp, nullable=False, server_default=func.now()),
    Column("must_flush", Boolean, nullable=False, server_default=false()),
)

# Hits of per-address limits shared by every API replica (services/core/shared_limits.py).
cluster_limit_hits = Table(
    "cluster_limit_hits",
    metadata,
    Column("limiter", String(64), nullable=False),
    Column("key", String(320), nullable=False),
    Column("at", Double, nullable=False),  # epoch seconds
    Index("ix_cluster_limit_hits_key", "limiter", "key", "at"),
)

# Open tail sessions, under the replica holding them; a WebSocket that reaches another replica
# presents the token, whose hash moves the session there.
cluster_tails = Table(
    "cluster_tails",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("script", String(128), nullable=False),
    Column("node_id", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("filters", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Index("ix_cluster_tails_script", "account_id", "script"),
)
