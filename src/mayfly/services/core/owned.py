"""Finding a row an account holds by its name there (a Worker's, a bucket's or a database's name,
a KV namespace's title: each unique within its account)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Row, select


def named_row(
    conn: Connection, name_column: Column[str], account_id: str, name: str
) -> Row[Any] | None:
    """The row of `name_column`'s table that the account holds under `name`, or None."""
    table = name_column.table
    return conn.execute(
        select(table).where(table.c.account_id == account_id, name_column == name)
    ).first()
