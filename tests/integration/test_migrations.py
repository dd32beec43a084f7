"""The migrations create exactly the schema that storage/tables.py declares."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

from mayfly.storage.database import MIGRATIONS_DIR, Database
from mayfly.storage.tables import metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    db.migrate()  # idempotent at every start
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []


# What versions before migration 0013 ran at every start on PostgreSQL, outside the migrations.
LEGACY_CLUSTER_DDL = (
    """CREATE TABLE cluster_nodes (id VARCHAR(100) PRIMARY KEY, role VARCHAR(16) NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        must_flush BOOLEAN NOT NULL DEFAULT false)""",
    """CREATE TABLE cluster_limit_hits (limiter VARCHAR(64) NOT NULL, key VARCHAR(320) NOT NULL,
        at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX ix_cluster_limit_hits_key ON cluster_limit_hits (limiter, key, at)",
    """CREATE TABLE cluster_tails (id VARCHAR(32) PRIMARY KEY, account_id VARCHAR(32) NOT NULL,
        script VARCHAR(128) NOT NULL, node_id VARCHAR(100) NOT NULL,
        token_hash VARCHAR(64) NOT NULL UNIQUE, filters TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX ix_cluster_tails_script ON cluster_tails (account_id, script)",
    "INSERT INTO cluster_nodes (id, role) VALUES ('old-node', 'all')",
)


@pytest.mark.postgres
def test_cluster_tables_made_before_their_migration_are_adopted(postgres_url: str) -> None:
    db = Database(postgres_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0012")
        for statement in LEGACY_CLUSTER_DDL:
            conn.execute(text(statement))
    db.migrate()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        kept = conn.execute(text("SELECT id FROM cluster_nodes")).scalars().all()
    db.dispose()
    assert diff == []
    assert kept == ["old-node"]
