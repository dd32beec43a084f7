"""What an operator does to accounts (`mayfly admin account …`): list, show, suspend, resume,
delete. Every change is audited with the operator as its actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from mayfly.errors import Conflict, NotFound
from mayfly.model import Account, iso_seconds
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.accounts import account_from_row
from mayfly.services.resources.d1 import delete_database_files
from mayfly.services.temporary.lifecycle import delete_accounts_content
from mayfly.storage.tables import (
    accounts,
    api_tokens,
    kv_namespaces,
    memberships,
    scripts,
    tombstones,
    users,
)


def _iso(value: datetime | None) -> str | None:
    return iso_seconds(value) if value is not None else None


@dataclass(frozen=True)
class AccountSummary:
    """An account (as account_from_row reads it), its owner's email and its number of Workers."""

    account: Account
    owner_email: str | None
    workers: int

    def to_json(self) -> dict[str, Any]:
        account = self.account
        return {
            "id": account.id,
            "name": account.name,
            "kind": account.kind,
            "created_at": _iso(account.created_at),
            "expires_at": _iso(account.expires_at),
            "claimed_at": _iso(account.claimed_at),
            "suspended_at": _iso(account.suspended_at),
            "owner_email": self.owner_email,
            "workers": self.workers,
        }


class AccountAdmin:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def _query(self) -> Any:
        workers = (
            select(func.count())
            .select_from(scripts)
            .where(scripts.c.account_id == accounts.c.id)
            .scalar_subquery()
        )
        return select(
            accounts,
            users.c.email.label("owner_email"),
            workers.label("workers"),
        ).select_from(accounts.outerjoin(users, users.c.id == accounts.c.owner_user_id))

    @staticmethod
    def _summary(row: Any) -> AccountSummary:
        return AccountSummary(account_from_row(row), row.owner_email, int(row.workers or 0))

    def list_accounts(
        self, kind: str | None = None, suspended: bool = False, limit: int = 1000
    ) -> list[AccountSummary]:
        query = self._query().order_by(accounts.c.created_at, accounts.c.id).limit(limit)
        if kind:
            query = query.where(accounts.c.kind == kind)
        if suspended:
            query = query.where(accounts.c.suspended_at.is_not(None))
        with self.ctx.db.read() as conn:
            return [self._summary(r) for r in conn.execute(query).all()]

    def show(self, account: str) -> dict[str, Any]:
        """One account (a name or an id): its summary, Workers, token and namespace counts."""
        with self.ctx.db.read() as conn:
            row = conn.execute(
                self._query().where((accounts.c.id == account) | (accounts.c.name == account))
            ).first()
            if row is None:
                raise NotFound(f"No account named {account!r}.")
            found = self._summary(row)
            names = conn.execute(
                select(scripts.c.name)
                .where(scripts.c.account_id == found.account.id)
                .order_by("name")
            ).scalars()
            tokens = conn.execute(
                select(func.count())
                .select_from(api_tokens)
                .where(
                    api_tokens.c.account_id == found.account.id, api_tokens.c.revoked_at.is_(None)
                )
            ).scalar_one()
            namespaces = conn.execute(
                select(func.count())
                .select_from(kv_namespaces)
                .where(kv_namespaces.c.account_id == found.account.id)
            ).scalar_one()
        return {
            **found.to_json(),
            "scripts": [
                {"name": n, "url": self.ctx.worker_url(n, found.account.name)} for n in names
            ],
            "active_tokens": int(tokens),
            "kv_namespaces": int(namespaces),
        }

    def _find(self, conn: Connection, account: str) -> Any:
        row = conn.execute(
            select(accounts).where((accounts.c.id == account) | (accounts.c.name == account))
        ).first()
        if row is None:
            raise NotFound(f"No account named {account!r}.")
        return row

    def _hosts(self, conn: Connection, account_id: str, name: str) -> list[str]:
        names = conn.execute(select(scripts.c.name).where(scripts.c.account_id == account_id))
        return [self.ctx.worker_host(n, name) for n in names.scalars()]

    def set_suspended(
        self, account: str, suspended: bool, actor: str = "operator", reason: str = ""
    ) -> tuple[AccountSummary, list[str]]:
        """Suspend (its Workers answer 503, its tokens cannot write) or resume an account.

        Returns the account as it is now and its Workers' hosts (for route invalidation)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            row = self._find(conn, account)
            if (row.suspended_at is not None) == suspended:
                state = "suspended" if suspended else "not suspended"
                raise Conflict(f"The account {row.name} is already {state}.")
            conn.execute(
                update(accounts)
                .where(accounts.c.id == row.id)
                .values(suspended_at=now if suspended else None)
            )
            event = "account.suspended" if suspended else "account.resumed"
            audit.record(conn, row.id, event, actor, now, reason=reason)
            hosts = self._hosts(conn, row.id, row.name)
            summary = self._summary(
                conn.execute(self._query().where(accounts.c.id == row.id)).one()
            )
        return summary, hosts

    def delete(self, account: str, actor: str = "operator") -> tuple[str, list[str]]:
        """Delete an account and everything it holds, as the reaper does an expired one (its
        name is kept as a tombstone for the cooldown). Returns its name and its Workers' hosts."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            row = self._find(conn, account)
            hosts = self._hosts(conn, row.id, row.name)
            databases = delete_accounts_content(conn, [row.id])
            conn.execute(delete(api_tokens).where(api_tokens.c.account_id == row.id))
            conn.execute(delete(memberships).where(memberships.c.account_id == row.id))
            conn.execute(delete(accounts).where(accounts.c.id == row.id))
            conn.execute(
                insert(tombstones).values(
                    account_id=row.id,
                    name=row.name,
                    created_at=row.created_at,
                    expired_at=row.expires_at,
                    deleted_at=now,
                    keep_until=now + timedelta(seconds=self.ctx.settings.tombstone_cooldown),
                    claim_token_hash=row.claim_token_hash,
                )
            )
            audit.record(
                conn, row.id, "account.deleted", actor, now, reason="operator", scripts=len(hosts)
            )
        self.ctx.blobs.delete_account_files(row.id)  # after the commit, like the reaper
        delete_database_files(self.ctx.settings.data_dir, databases)
        return row.name, hosts
