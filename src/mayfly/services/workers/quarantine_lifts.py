"""What people do to quarantines: an operator lifts one, a claim moves one with its Worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from mayfly.errors import NotFound
from mayfly.model import iso_seconds
from mayfly.services.core import audit
from mayfly.services.temporary.taints import clear_worker_taints
from mayfly.services.workers.quarantine_reads import QuarantineReads
from mayfly.services.workers.quarantine_rules import (
    AccountQuarantine,
    Quarantine,
    active_account_quarantine,
    active_quarantine,
)
from mayfly.storage.tables import account_quarantines, accounts, incidents, quarantines


class QuarantineLifts(QuarantineReads):
    """An operator's lifts (`mayfly admin quarantine lift`)."""

    def lift(self, account: str, script: str, actor: str = "operator") -> tuple[Quarantine, str]:
        """End a running quarantine now and forgive its strikes. `account` is a name or an id.

        Returns the quarantine as it was and the Worker's host (for route invalidation)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            owner = _owner(conn, account)
            found = active_quarantine(conn, owner.id, script, now)
            if found is None:
                raise NotFound(f"Worker {script!r} of {owner.name} is not quarantined.")
            conn.execute(
                update(quarantines)
                .where(quarantines.c.account_id == owner.id, quarantines.c.script == script)
                .values(lifted_at=now, lifted_by=actor, until=now, strikes=0)
            )
            audit.record(
                conn,
                owner.id,
                "worker.quarantine_lifted",
                actor,
                now,
                script=script,
                version_id=found.version_id,
                kind=found.kind,
                detail=found.detail,
                until=iso_seconds(found.until),
            )
            # The operator judged the verdict: the address it tainted is not held to it.
            clear_worker_taints(conn, owner.id, script, actor, now)
        return found, self.ctx.worker_host(script, owner.name)

    def lift_account(
        self, account: str, actor: str = "operator"
    ) -> tuple[AccountQuarantine, list[str]]:
        """End a running account quarantine now and forgive its strikes (its Workers' own
        quarantines stay). `account` is a name or an id. Returns the quarantine as it was and the
        hosts of the account's Workers (for route invalidation)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            owner = _owner(conn, account)
            found = active_account_quarantine(conn, owner.id, now)
            if found is None:
                raise NotFound(f"Account {owner.name} is not quarantined.")
            conn.execute(
                update(account_quarantines)
                .where(account_quarantines.c.account_id == owner.id)
                .values(lifted_at=now, lifted_by=actor, until=now, strikes=0)
            )
            audit.record(
                conn,
                owner.id,
                "account.quarantine_lifted",
                actor,
                now,
                scripts=list(found.scripts),
                kind=found.kind,
                detail=found.detail,
                until=iso_seconds(found.until),
            )
            hosts = self._hosts(conn, owner.id, owner.name)
        return found, hosts


def move_worker_quarantine(
    conn: Connection, source_id: str, name: str, target_id: str, new_name: str
) -> None:
    """A claim moves a Worker into another account: its quarantine and strikes go with it."""
    moving = conn.execute(
        select(quarantines.c.script).where(
            quarantines.c.account_id == source_id, quarantines.c.script == name
        )
    ).first()
    if moving is not None:
        # A row under the new name can only be left from a deleted Worker of the target.
        conn.execute(
            delete(quarantines).where(
                quarantines.c.account_id == target_id, quarantines.c.script == new_name
            )
        )
        conn.execute(
            update(quarantines)
            .where(quarantines.c.account_id == source_id, quarantines.c.script == name)
            .values(account_id=target_id, script=new_name)
        )
    conn.execute(
        update(incidents)
        .where(incidents.c.account_id == source_id, incidents.c.script == name)
        .values(account_id=target_id, script=new_name)
    )


def _owner(conn: Connection, account: str) -> Row[Any, Any]:
    """The account (id and name) an operator named by its name or id."""
    owner = conn.execute(
        select(accounts.c.id, accounts.c.name).where(
            (accounts.c.id == account) | (accounts.c.name == account)
        )
    ).first()
    if owner is None:
        raise NotFound(f"No account named {account!r}.")
    return owner
