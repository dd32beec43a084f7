"""The migrations create exactly the schema that storage/tables.py declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mayfly.storage.database import Database
from mayfly.storage.tables import metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    db.migrate()  # idempotent at every start
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []
