"""Claiming a temporary account: a human keeps it, or moves what it holds into an account they own.

Either way one transaction makes the account permanent and owned, clears its expiry, consumes the
claim token and revokes the agent's token (10002). The first statement is a conditional UPDATE on
the claim token, so exactly one of concurrent claims wins on SQLite and PostgreSQL alike. A moved
account stays behind as an empty, permanent, ownerless husk that keeps its name, its revoked token
(10002) and its used claim token (409); its old Worker hosts answer 410 naming the new URLs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update

from mayfly.errors import (
    Conflict,
    Forbidden,
    InvalidToken,
    MayflyError,
    NotFound,
    TemporaryAccountExpired,
    ValidationError,
)
from mayfly.model import Account, as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.crypto import hash_token
from mayfly.services.identity.accounts import get_account
from mayfly.services.identity.memberships import add_owner, require_member
from mayfly.services.identity.tokens import EXPIRED_MESSAGE, PREFIXES, revoke_account_tokens
from mayfly.services.identity.users import User
from mayfly.services.temporary.transfers import MovePlan, WorkerMove, plan_transfer, transfer
from mayfly.services.workers.inventory import Inventory, inventory_of, workers_of
from mayfly.services.workers.quarantine_rules import (
    account_suspended_error,
    active_account_quarantine,
)
from mayfly.storage.tables import accounts, api_tokens, audit_events, tombstones

EXTENDED = "account.extended"  # the audit event; counting them is how often it was extended


class ClaimLinkUnknown(NotFound):
    def __init__(self) -> None:
        super().__init__(
            "This claim link is not valid. Check that you copied all of it from the agent's output."
        )


class ClaimLinkExpired(MayflyError):
    code, status = 10410, 410

    def __init__(self) -> None:
        super().__init__(
            "This temporary account expired before anyone claimed it, and was deleted with "
            "everything it held. Ask the agent to deploy again for a new claim link."
        )


class AlreadyClaimed(Conflict):
    def __init__(self) -> None:
        super().__init__("This account was already claimed; its claim link cannot be used again.")


class MoveConflicts(Conflict):
    """409, 10409: names that clash in the target account; the claim page answers 409 with the
    plan and a rename field for each."""

    def __init__(self, plan: MovePlan):
        super().__init__("Some names clash with the target account: rename them, then claim.")
        self.plan = plan


class ExtensionRefused(Conflict):
    """No more room to extend: the count or the maximum lifetime is reached."""


ClaimStatus = Literal["unclaimed", "claimed", "expired"]


@dataclass(frozen=True)
class ExtensionOffer:
    """What one more extension would do, shown on the claim page."""

    new_expires_at: datetime
    left: int  # extensions still allowed, this one included
    max_expires_at: datetime  # the hard maximum lifetime, counted from creation


@dataclass(frozen=True)
class ClaimView:
    account: Account
    inventory: Inventory
    expires_at: datetime
    extension: ExtensionOffer | None = None


@dataclass(frozen=True)
class ClaimResult:
    account: Account  # the account that now holds everything (the claimed one, or the target)
    mode: Literal["keep", "move"]
    moved: list[WorkerMove] = field(default_factory=list)


@dataclass(frozen=True)
class PreviewStatus:
    id: str
    name: str
    status: ClaimStatus
    expires_at: datetime | None
    claimed_at: datetime | None = None
    deleted_at: datetime | None = None


def _winning_update(claim_hash: str, user_id: str, now: datetime) -> Any:
    """The statement that decides the race: only one transaction can match this row."""
    return (
        update(accounts)
        .where(
            accounts.c.claim_token_hash == claim_hash,
            accounts.c.claimed_at.is_(None),
            accounts.c.kind == "temporary",
            accounts.c.expires_at > now,
        )
        .values(kind="permanent", expires_at=None, claimed_at=now, owner_user_id=user_id)
    )


class ClaimService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    # -- reading a claim link --------------------------------------------------------------------

    def _open(self, conn: Connection, claim_hash: str) -> Account:
        """The claimable account for a claim token hash, or why it cannot be claimed."""
        row = conn.execute(
            select(accounts).where(accounts.c.claim_token_hash == claim_hash)
        ).first()
        if row is None:
            tomb = conn.execute(
                select(tombstones.c.account_id).where(tombstones.c.claim_token_hash == claim_hash)
            ).first()
            raise ClaimLinkExpired() if tomb is not None else ClaimLinkUnknown()
        if row.claimed_at is not None:
            raise AlreadyClaimed()
        if row.expires_at is None or as_utc(row.expires_at) <= self.ctx.clock.now():
            raise ClaimLinkExpired()
        account = get_account(conn, row.id)
        assert account is not None
        return account

    def inspect(self, claim_token: str) -> ClaimView:
        """What the claim page shows; raises ClaimLinkUnknown / ClaimLinkExpired / AlreadyClaimed."""
        with self.ctx.db.read() as conn:
            account = self._open(conn, hash_token(claim_token))
            inventory = inventory_of(conn, self.ctx, account)
            offer = self._offer(conn, account, self.ctx.clock.now())
        assert account.expires_at is not None
        return ClaimView(account, inventory, as_utc(account.expires_at), offer)

    # -- extending (a human who is not ready to claim) -----------------------------------------

    def _offer(self, conn: Connection, account: Account, now: datetime) -> ExtensionOffer | None:
        """One more extension, or None when the count or the maximum lifetime is reached."""
        s = self.ctx.settings
        assert account.expires_at is not None
        expires_at = as_utc(account.expires_at)
        done = conn.execute(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.account_id == account.id, audit_events.c.event == EXTENDED)
        ).scalar_one()
        ceiling = as_utc(account.created_at) + timedelta(seconds=s.extension_max_lifetime)
        ceiling = ceiling.replace(microsecond=0)  # expiries are shown and compared in seconds
        left = s.extensions_max - done
        if left <= 0 or s.extension_seconds <= 0 or expires_at >= ceiling:
            return None
        new_expires_at = min(max(expires_at, now) + timedelta(seconds=s.extension_seconds), ceiling)
        return ExtensionOffer(new_expires_at.replace(microsecond=0), left, ceiling)

    async def extend(self, claim_token: str, user: User) -> Account:
        """A logged-in human gives the agent more time; token, URLs and claim link stay as they are.

        Raises ExtensionRefused past the settings' count or maximum lifetime (and the claim-link
        errors when the account can no longer be claimed)."""
        account = await asyncio.to_thread(self._extend, claim_token, user)
        await self._invalidate(ClaimResult(account, "keep"))  # routes carry the expiry
        return account

    def _extend(self, claim_token: str, user: User) -> Account:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            account = self._open(conn, hash_token(claim_token))
            offer = self._offer(conn, account, now)
            if offer is None:
                raise ExtensionRefused(
                    "This temporary account cannot be extended any further: claim it to keep it."
                )
            assert account.expires_at is not None
            # Conditional on the expiry read above: of two concurrent extensions, one applies.
            changed = conn.execute(
                update(accounts)
                .where(
                    accounts.c.id == account.id,
                    accounts.c.claimed_at.is_(None),
                    accounts.c.expires_at == account.expires_at,
                )
                .values(expires_at=offer.new_expires_at)
            ).rowcount
            if changed != 1:
                raise ExtensionRefused("The account changed meanwhile; reload the page.")
            audit.record(
                conn,
                account.id,
                EXTENDED,
                user.email,
                now,
                previous_expires_at=as_utc(account.expires_at).isoformat(),
                expires_at=offer.new_expires_at.isoformat(),
            )
            extended = get_account(conn, account.id)
        assert extended is not None
        return extended

    def plan_move(
        self,
        claim_token: str,
        user_id: str,
        target_id: str,
        renames: dict[str, str] | None = None,
        title_renames: dict[str, str] | None = None,
    ) -> MovePlan:
        """The preview: each Worker's old → new URL, and the names that clash."""
        with self.ctx.db.read() as conn:
            source = self._open(conn, hash_token(claim_token))
            target = self._target(conn, user_id, target_id, source)
            return plan_transfer(conn, self.ctx, source, target, renames or {}, title_renames or {})

    def _target(self, conn: Connection, user_id: str, target_id: str, source: Account) -> Account:
        target = require_member(conn, user_id, target_id)
        if target.id == source.id or target.kind != "permanent":
            raise ValidationError("Choose one of your permanent accounts to move into.")
        return target

    # -- claiming ----------------------------------------------------------------------------------

    def _win(self, conn: Connection, claim_hash: str, user: User, now: datetime) -> Account:
        """Take the account for this user, or raise why not (the loser of a race: 409)."""
        if conn.execute(_winning_update(claim_hash, user.id, now)).rowcount != 1:
            self._open(conn, claim_hash)  # raises the reason
            raise AlreadyClaimed()  # pragma: no cover - _open always raises here
        row = conn.execute(
            select(accounts.c.id).where(accounts.c.claim_token_hash == claim_hash)
        ).one()
        revoke_account_tokens(conn, row.id, "claimed", now)
        account = get_account(conn, row.id)
        assert account is not None
        return account

    async def keep(self, claim_token: str, user: User) -> ClaimResult:
        """The temporary account becomes a permanent account owned by the user; URLs unchanged."""
        result = await asyncio.to_thread(self._keep, claim_token, user)
        await self._invalidate(result)
        return result

    def _keep(self, claim_token: str, user: User) -> ClaimResult:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            account = self._win(conn, hash_token(claim_token), user, now)
            add_owner(conn, user.id, account.id)
            audit.record(conn, account.id, "account.claimed", user.email, now, mode="keep")
        return ClaimResult(account, "keep")

    async def move(
        self,
        claim_token: str,
        user: User,
        target_id: str,
        renames: dict[str, str] | None = None,
        title_renames: dict[str, str] | None = None,
    ) -> ClaimResult:
        """Everything moves into the user's account; MoveConflicts if names still clash."""
        result = await asyncio.to_thread(
            self._move, claim_token, user, target_id, renames or {}, title_renames or {}
        )
        await self._invalidate(result)
        return result

    def _move(
        self,
        claim_token: str,
        user: User,
        target_id: str,
        renames: dict[str, str],
        title_renames: dict[str, str],
    ) -> ClaimResult:
        now = self.ctx.clock.now()
        created: list[Path] = []
        try:
            with self.ctx.db.begin() as conn:
                source = self._win(conn, hash_token(claim_token), user, now)
                whole = active_account_quarantine(conn, source.id, now)
                if whole is not None:
                    # Its Workers would leave their account's quarantine behind; keeping the
                    # account keeps the quarantine with it.
                    raise account_suspended_error(whole, source.name, now)
                target = self._target(conn, user.id, target_id, source)
                plan = plan_transfer(conn, self.ctx, source, target, renames, title_renames)
                if not plan.ready:
                    raise MoveConflicts(plan)
                created = transfer(conn, self.ctx, plan, now)
                audit.record(
                    conn,
                    source.id,
                    "account.claimed",
                    user.email,
                    now,
                    mode="move",
                    into=target.name,
                )
                audit.record(
                    conn,
                    target.id,
                    "account.merged",
                    user.email,
                    now,
                    source=source.name,
                    workers={m.name: m.new_name for m in plan.workers},
                    kv_namespaces=len(plan.namespaces),
                )
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
        with self.ctx.db.begin() as conn:
            self.ctx.blobs.delete_account(conn, source.id)  # rows are gone; this drops the files
        return ClaimResult(target, "move", plan.workers)

    async def _invalidate(self, result: ClaimResult) -> None:
        """Routes changed: the claimed account lost its expiry, or Workers moved hosts."""

        def hosts() -> list[str]:
            with self.ctx.db.read() as conn:
                workers = workers_of(conn, self.ctx, result.account)
            names = [self.ctx.worker_host(w.name, result.account.name) for w in workers]
            return names + [m.old_host for m in result.moved]

        found = await asyncio.to_thread(hosts)
        if found:
            await self.ctx.invalidator.invalidate(found)

    # -- status for the agent --------------------------------------------------------------------

    def preview_status(self, token: str, account_id: str) -> PreviewStatus:
        """unclaimed | claimed | expired for the agent's own temporary account, with its token.

        Works with a revoked token (after a claim) and after deletion (from the tombstone).
        """
        with self.ctx.db.read() as conn:
            owner = conn.execute(
                select(api_tokens.c.account_id).where(api_tokens.c.token_hash == hash_token(token))
            ).scalar_one_or_none()
            if owner is None:
                tomb = conn.execute(
                    select(tombstones).where(tombstones.c.account_id == account_id)
                ).first()
                if tomb is not None and token.startswith(PREFIXES["temporary"]):
                    return PreviewStatus(
                        tomb.account_id,
                        tomb.name,
                        "expired",
                        tomb.expired_at,
                        None,
                        tomb.deleted_at,
                    )
                if token.startswith(PREFIXES["temporary"]):
                    raise TemporaryAccountExpired(EXPIRED_MESSAGE)
                raise InvalidToken("Invalid API token.")
            if owner != account_id:
                raise Forbidden("This API token is not valid for that account.")
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).one()
        if row.claimed_at is not None:
            return PreviewStatus(row.id, row.name, "claimed", None, row.claimed_at)
        if row.kind != "temporary":
            raise NotFound("This is not a temporary account: it has no claim status.")
        expires_at = as_utc(row.expires_at)
        status: ClaimStatus = "expired" if expires_at <= self.ctx.clock.now() else "unclaimed"
        return PreviewStatus(row.id, row.name, status, expires_at)
