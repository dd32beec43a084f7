"""How storage/tables.py, resource_tables.py and cluster_tables.py spell a column: NOT NULL unless `optional`, and
names for the types many columns share. (The migrations keep their own literal spelling: what a
migration that has run created must not change when these do.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, String
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeEngine

Timestamp = DateTime(timezone=True)
Id = String(32)  # the platform's ids (accounts, users, Workers, namespaces, buckets, …)
Uuid = String(36)  # versions, deployments, D1 databases
Digest = String(64)  # SHA-256 hex: hashed tokens and codes, blobs
Email = String(320)  # an address, or who did something (`actor`, `author`)

ColumnType = TypeEngine[Any] | type[TypeEngine[Any]]


def required(name: str, type_: ColumnType, *args: SchemaItem, **kw: Any) -> Column[Any]:
    return Column(name, type_, *args, nullable=False, **kw)


def optional(name: str, type_: ColumnType, *args: SchemaItem, **kw: Any) -> Column[Any]:
    return Column(name, type_, *args, nullable=True, **kw)


def key(name: str, type_: ColumnType, *args: SchemaItem, **kw: Any) -> Column[Any]:
    """A column of the primary key."""
    return Column(name, type_, *args, primary_key=True, **kw)


def account_ref(*, key: bool = False, index: bool | None = None) -> Column[str]:
    """`account_id`: the account a row belongs to (the reaper deletes the row, a claim moves it)."""
    if key:
        return Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True)
    return Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=index)
