"""`column IN (a batch of ids)` with the whole batch as one bound parameter.

A plain `column.in_(ids)` renders one placeholder per id at every execution (SQLAlchemy's
"expanding" parameters): for a batch of hundreds of ids and a statement per table that is most of
the Python time of a set-based delete. Here the statement keeps one parameter, so it is compiled
once and cached whatever the batch size, and never meets SQLite's limit on placeholders: a JSON
array read with `json_each` on SQLite, an array compared with `= ANY` on PostgreSQL. Both use the
column's index (`SEARCH … USING INDEX` on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, any_, bindparam, func, literal_column
from sqlalchemy import select as select_
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(conn: Connection, column: ColumnElement[Any], ids: Sequence[str]) -> ColumnElement[bool]:
    """`column IN ids` for the connection's database, with `ids` as a single parameter."""
    if conn.dialect.name == "sqlite":
        members = bindparam(None, json.dumps(list(ids)), type_=String, unique=True)
        values = select_(literal_column("value", String)).select_from(func.json_each(members))
        return column.in_(values.scalar_subquery())
    return column == any_(bindparam(None, list(ids), type_=ARRAY(String), unique=True))
