"""Coordination state of several nodes on one PostgreSQL (services/operations/cluster.py): part of
the schema in storage/tables.py, kept here for that module's length. SQLite has the tables too,
unused (a single process coordinates with nobody)."""

from __future__ import annotations

from sqlalchemy import Boolean, Double, Index, String, Table, Text, false, func

from mayfly.storage.columns import Digest, Id, Timestamp, key, required
from mayfly.storage.tables import metadata

# One row per running node: its role and a heartbeat written with the database's clock; a node
# that missed an acknowledgement deadline is marked `must_flush`.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    key("id", String(100)),
    required("role", String(16)),
    required("started_at", Timestamp, server_default=func.now()),
    required("heartbeat_at", Timestamp, server_default=func.now()),
    required("must_flush", Boolean, server_default=false()),
)

# Hits of per-address limits shared by every API replica (services/core/shared_limits.py).
cluster_limit_hits = Table(
    "cluster_limit_hits",
    metadata,
    required("limiter", String(64)),
    required("key", String(320)),
    required("at", Double),  # epoch seconds
    Index("ix_cluster_limit_hits_key", "limiter", "key", "at"),
)

# Open tail sessions, under the replica holding them; a WebSocket that reaches another replica
# presents the token, whose hash moves the session there.
cluster_tails = Table(
    "cluster_tails",
    metadata,
    key("id", Id),
    required("account_id", Id),
    required("script", String(128)),
    required("node_id", String(100)),
    required("token_hash", Digest, unique=True),
    required("filters", Text),
    required("created_at", Timestamp),
    required("expires_at", Timestamp),
    Index("ix_cluster_tails_script", "account_id", "script"),
)
