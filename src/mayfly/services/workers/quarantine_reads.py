"""Who is quarantined: the API's 10060 check, the account's and the operator's lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.workers.quarantine_rules import (
    AccountQuarantine,
    Quarantine,
    account_from_row,
    account_suspended_error,
    active_account_quarantine,
    active_quarantine,
    from_row,
    suspended_error,
)
from mayfly.storage.tables import account_quarantines, accounts, quarantines, scripts


class QuarantineReads:
    """Reads of quarantines; nothing here writes."""

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def active(self, account_id: str, script: str) -> Quarantine | None:
        with self.ctx.db.read() as conn:
            return active_quarantine(conn, account_id, script, self.ctx.clock.now())

    def active_account(self, account_id: str) -> AccountQuarantine | None:
        with self.ctx.db.read() as conn:
            return active_account_quarantine(conn, account_id, self.ctx.clock.now())

    def check(self, account: Account, script: str) -> None:
        """Raise 10060 when the Worker or its whole account is quarantined (API calls that touch
        a Worker, uploads of a new one included)."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            whole = active_account_quarantine(conn, account.id, now)
            found = active_quarantine(conn, account.id, script, now) if whole is None else None
        if whole is not None:
            raise account_suspended_error(whole, account.name, now)
        if found is not None:
            raise suspended_error(found, now)

    def active_accounts_in(self, account_ids: Sequence[str]) -> dict[str, AccountQuarantine]:
        """Running account quarantines of these accounts, by account id."""
        if not account_ids:
            return {}
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(account_quarantines).where(
                    account_quarantines.c.account_id.in_(list(account_ids)),
                    account_quarantines.c.until > now,
                    account_quarantines.c.lifted_at.is_(None),
                )
            ).all()
        return {r.account_id: account_from_row(r) for r in rows}

    def active_in(self, account_ids: Sequence[str]) -> list[Quarantine]:
        """Running quarantines of these accounts, by account then script."""
        if not account_ids:
            return []
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(quarantines)
                .where(
                    quarantines.c.account_id.in_(list(account_ids)),
                    quarantines.c.until > now,
                    quarantines.c.lifted_at.is_(None),
                )
                .order_by(quarantines.c.account_id, quarantines.c.script)
            ).all()
        return [from_row(r) for r in rows]

    def list_all(self, include_ended: bool = False) -> list[tuple[Quarantine, str]]:
        """Every quarantine (running ones unless `include_ended`) with its account's name."""
        now = self.ctx.clock.now()
        query = select(quarantines, accounts.c.name.label("account_name")).join(
            accounts, accounts.c.id == quarantines.c.account_id
        )
        if not include_ended:
            query = query.where(quarantines.c.until > now, quarantines.c.lifted_at.is_(None))
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(quarantines.c.until.desc())).all()
        return [(from_row(r), r.account_name) for r in rows]

    def list_accounts(self, include_ended: bool = False) -> list[tuple[AccountQuarantine, str]]:
        """Every account quarantine (running ones unless `include_ended`) with the account's
        name."""
        now = self.ctx.clock.now()
        query = select(account_quarantines, accounts.c.name.label("account_name")).join(
            accounts, accounts.c.id == account_quarantines.c.account_id
        )
        if not include_ended:
            query = query.where(
                account_quarantines.c.until > now, account_quarantines.c.lifted_at.is_(None)
            )
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(account_quarantines.c.until.desc())).all()
        return [(account_from_row(r), r.account_name) for r in rows]

    def _hosts(self, conn: Connection, account_id: str, account_name: str) -> list[str]:
        """The hosts of every Worker of the account (whose cached routes an account change
        must drop)."""
        names = conn.execute(
            select(scripts.c.name)
            .where(scripts.c.account_id == account_id)
            .order_by(scripts.c.name)
        ).scalars()
        return [self.ctx.worker_host(name, account_name) for name in names]
