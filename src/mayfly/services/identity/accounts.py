"""Accounts: reading them, and creating permanent ones (operator command, later sign-up)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.errors import Conflict, Forbidden, NotFound, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.tokens import create_token
from mayfly.storage.tables import accounts, tombstones

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def account_from_row(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        kind=row.kind,
        created_at=row.created_at,
        expires_at=row.expires_at,
        claimed_at=row.claimed_at,
        owner_user_id=row.owner_user_id,
        suspended_at=getattr(row, "suspended_at", None),
    )


def check_account_name(name: str) -> None:
    """400 unless `name` can be an account's name (its Workers' subdomain: a DNS label)."""
    if not NAME_RE.match(name):
        raise ValidationError(
            "Account names are 1-63 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen."
        )


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return account_from_row(row) if row else None


def name_taken(conn: Connection, name: str) -> bool:
    if conn.execute(select(accounts.c.id).where(accounts.c.name == name)).first():
        return True
    return (
        conn.execute(select(tombstones.c.name).where(tombstones.c.name == name)).first() is not None
    )


class AccountService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def require_access(self, principal: Principal, account_id: str) -> Account:
        """The account, if the principal's token is for it; 9109 otherwise (never 404: no probing)."""
        if principal.account_id != account_id:
            raise Forbidden("This API token is not valid for that account.")
        with self.ctx.db.read() as conn:
            account = get_account(conn, account_id)
        if account is None:
            raise Forbidden("This API token is not valid for that account.")
        return account

    def for_principal(self, principal: Principal) -> list[Account]:
        with self.ctx.db.read() as conn:
            account = get_account(conn, principal.account_id)
        return [account] if account else []

    def create_permanent(self, name: str, actor: str = "operator") -> tuple[Account, str]:
        """A permanent account with an `mfp_` token (returned once)."""
        check_account_name(name)
        now = self.ctx.clock.now()
        account_id = secrets.token_hex(16)
        try:
            with self.ctx.db.begin() as conn:
                if name_taken(conn, name):
                    raise Conflict(f"The account name {name!r} is taken.")
                conn.execute(
                    insert(accounts).values(
                        id=account_id, name=name, kind="permanent", created_at=now
                    )
                )
                _, token = create_token(
                    conn, account_id=account_id, kind="permanent", name="operator token", now=now
                )
                audit.record(conn, account_id, "account.created", actor, now, kind="permanent")
                audit.record(conn, account_id, "token.created", actor, now)
                account = get_account(conn, account_id)
        except IntegrityError as exc:
            raise Conflict(f"The account name {name!r} is taken.") from exc
        if account is None:  # pragma: no cover - inserted just above
            raise NotFound("account vanished")
        return account, token
