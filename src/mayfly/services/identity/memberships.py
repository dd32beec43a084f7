"""Which accounts a person owns: listing them, checking access, creating a new one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.errors import Conflict, Forbidden
from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.accounts import (
    account_from_row,
    check_account_name,
    get_account,
    name_taken,
)
from mayfly.services.identity.users import User
from mayfly.services.workers.inventory import Inventory, inventory_of
from mayfly.storage.tables import accounts, memberships

NO_ACCESS = "You do not own that account."


@dataclass(frozen=True)
class AccountView:
    account: Account
    inventory: Inventory
    events: list[dict[str, Any]]


def add_owner(conn: Connection, user_id: str, account_id: str) -> None:
    conn.execute(insert(memberships).values(user_id=user_id, account_id=account_id, role="owner"))


def is_member(conn: Connection, user_id: str, account_id: str) -> bool:
    row = conn.execute(
        select(memberships.c.role).where(
            memberships.c.user_id == user_id, memberships.c.account_id == account_id
        )
    ).first()
    return row is not None


def require_member(conn: Connection, user_id: str, account_id: str) -> Account:
    """The account if the user owns it; Forbidden otherwise (the same for a missing account)."""
    account = get_account(conn, account_id) if is_member(conn, user_id, account_id) else None
    if account is None:
        raise Forbidden(NO_ACCESS)
    return account


class MembershipService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def accounts_of(self, user_id: str) -> list[Account]:
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(accounts)
                .join(memberships, memberships.c.account_id == accounts.c.id)
                .where(memberships.c.user_id == user_id)
                .order_by(accounts.c.name)
            ).all()
        return [account_from_row(r) for r in rows]

    def require(self, user_id: str, account_id: str) -> Account:
        with self.ctx.db.read() as conn:
            return require_member(conn, user_id, account_id)

    def view(self, user_id: str, account_id: str) -> AccountView:
        """One account as its dashboard page shows it: Workers, KV, audit log (newest first)."""
        with self.ctx.db.read() as conn:
            account = require_member(conn, user_id, account_id)
            inventory = inventory_of(conn, self.ctx, account)
            events = list(reversed(audit.events_for(conn, account_id)))
        return AccountView(account, inventory, events)

    def inventories(self, user_id: str) -> list[tuple[Account, Inventory]]:
        found = self.accounts_of(user_id)
        with self.ctx.db.read() as conn:
            return [(a, inventory_of(conn, self.ctx, a)) for a in found]

    def create_account(self, user: User, name: str) -> Account:
        """A new permanent account owned by the user (its name is its Workers' subdomain)."""
        name = name.strip().lower()
        check_account_name(name)
        now = self.ctx.clock.now()
        account_id = secrets.token_hex(16)
        taken = Conflict(f"The account name {name!r} is taken; choose another.")
        try:
            with self.ctx.db.begin() as conn:
                if name_taken(conn, name):
                    raise taken
                conn.execute(
                    insert(accounts).values(
                        id=account_id,
                        name=name,
                        kind="permanent",
                        created_at=now,
                        owner_user_id=user.id,
                    )
                )
                add_owner(conn, user.id, account_id)
                audit.record(conn, account_id, "account.created", user.email, now, kind="permanent")
                account = get_account(conn, account_id)
        except IntegrityError as exc:
            raise taken from exc
        assert account is not None
        return account
