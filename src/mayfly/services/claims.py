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

from sqlalchemy import Connection, delete, insert, select, update

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
from mayfly.services import audit
from mayfly.services.accounts import get_account
from mayfly.services.context import ServiceContext
from mayfly.services.crypto import hash_token
from mayfly.services.inventory import Inventory, inventory_of, namespaces_of, workers_of
from mayfly.services.memberships import add_owner, require_member
from mayfly.services.scripts import check_script_name
from mayfly.services.tokens import EXPIRED_MESSAGE, PREFIXES, revoke_account_tokens
from mayfly.services.users import User
from mayfly.storage.tables import (
    accounts,
    api_tokens,
    asset_files,
    asset_upload_sessions,
    blobs,
    deployments,
    kv_entries,
    kv_namespaces,
    moved_hosts,
    scripts,
    tombstones,
    versions,
)


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


class MoveConflicts(ValidationError):
    """Names that clash in the target account: the page shows the plan with a rename field."""

    def __init__(self, plan: MovePlan):
        super().__init__("Some names clash with the target account: rename them, then claim.")
        self.plan = plan


ClaimStatus = Literal["unclaimed", "claimed", "expired"]


@dataclass(frozen=True)
class ClaimView:
    account: Account
    inventory: Inventory
    expires_at: datetime


@dataclass(frozen=True)
class WorkerMove:
    name: str
    old_host: str
    old_url: str
    new_name: str
    new_url: str
    clashes: bool  # the original name exists in the target: the page offers a rename
    problem: str | None = None


@dataclass(frozen=True)
class NamespaceMove:
    id: str
    title: str
    new_title: str
    clashes: bool
    problem: str | None = None


@dataclass(frozen=True)
class MovePlan:
    source: Account
    target: Account
    workers: list[WorkerMove]
    namespaces: list[NamespaceMove]
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not (
            self.problems
            or any(m.problem for m in self.workers)
            or any(n.problem for n in self.namespaces)
        )


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


def free_variant(name: str, taken: set[str], limit: int = 63) -> str:
    """`name-2`, `name-3`… the first not in `taken` (kept within `limit` characters)."""
    for n in range(2, 10_000):
        suffix = f"-{n}"
        candidate = name[: limit - len(suffix)].rstrip("-_") + suffix
        if candidate not in taken:
            return candidate
    raise ValidationError(f"No free name like {name!r}.")  # pragma: no cover


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
        assert account.expires_at is not None
        return ClaimView(account, inventory, as_utc(account.expires_at))

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
            return self._plan(conn, source, target, renames or {}, title_renames or {})

    def _target(self, conn: Connection, user_id: str, target_id: str, source: Account) -> Account:
        target = require_member(conn, user_id, target_id)
        if target.id == source.id or target.kind != "permanent":
            raise ValidationError("Choose one of your permanent accounts to move into.")
        return target

    def _plan(
        self,
        conn: Connection,
        source: Account,
        target: Account,
        renames: dict[str, str],
        title_renames: dict[str, str],
    ) -> MovePlan:
        existing = {w.name for w in workers_of(conn, self.ctx, target)}
        used = set(existing)
        worker_moves = []
        for w in workers_of(conn, self.ctx, source):
            clashes = w.name in existing
            wanted = renames.get(w.name, "").strip().lower()
            if not wanted:
                wanted = free_variant(w.name, used | existing) if clashes else w.name
            problem = None
            try:
                check_script_name(wanted)
            except ValidationError as exc:
                problem = exc.message
            if problem is None and wanted in used:
                problem = (
                    f"{target.name} already has a Worker named {wanted!r}; choose another name."
                )
            used.add(wanted)
            worker_moves.append(
                WorkerMove(
                    w.name,
                    self.ctx.worker_host(w.name, source.name),
                    w.url,
                    wanted,
                    self.ctx.worker_url(wanted, target.name),
                    clashes,
                    problem,
                )
            )
        existing_titles = {n.title for n in namespaces_of(conn, target.id)}
        used_titles = set(existing_titles)
        ns_moves = []
        for ns in namespaces_of(conn, source.id):
            clashes = ns.title in existing_titles
            wanted = title_renames.get(ns.id, "").strip()
            if not wanted:
                wanted = f"{ns.title} ({source.name})" if clashes else ns.title
            problem = None
            if len(wanted) > 512:
                problem = "KV namespace titles are at most 512 characters."
            elif wanted in used_titles:
                problem = f"{target.name} already has a KV namespace titled {wanted!r}."
            used_titles.add(wanted)
            ns_moves.append(NamespaceMove(ns.id, ns.title, wanted, clashes, problem))
        problems = []
        limit = self.ctx.settings.max_kv_namespaces
        if len(existing_titles) + len(ns_moves) > limit:
            problems.append(
                f"{target.name} would hold more than {limit} KV namespaces; "
                "delete some there first, or keep this account instead."
            )
        return MovePlan(source, target, worker_moves, ns_moves, problems)

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
                target = self._target(conn, user.id, target_id, source)
                plan = self._plan(conn, source, target, renames, title_renames)
                if not plan.ready:
                    raise MoveConflicts(plan)
                created = self._transfer(conn, plan, now)
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

    def _transfer(self, conn: Connection, plan: MovePlan, now: datetime) -> list[Path]:
        source, target = plan.source, plan.target
        for m in plan.workers:
            conn.execute(
                update(scripts)
                .where(scripts.c.account_id == source.id, scripts.c.name == m.name)
                .values(account_id=target.id, name=m.new_name, updated_at=now)
            )
            conn.execute(
                insert(moved_hosts).values(
                    old_host=m.old_host,
                    new_url=m.new_url,
                    created_at=now,
                    keep_until=now + timedelta(seconds=self.ctx.settings.tombstone_cooldown),
                )
            )
        for table in (versions, deployments, kv_entries):
            conn.execute(
                update(table).where(table.c.account_id == source.id).values(account_id=target.id)
            )
        for ns in plan.namespaces:
            conn.execute(
                update(kv_namespaces)
                .where(kv_namespaces.c.id == ns.id)
                .values(account_id=target.id, title=ns.new_title)
            )
        # Static assets are keyed by the client's content hash: a key the target already has is
        # the same file, so only the others move. Unfinished upload sessions are dropped.
        target_assets = select(asset_files.c.hash).where(asset_files.c.account_id == target.id)
        conn.execute(
            delete(asset_files).where(
                asset_files.c.account_id == source.id, asset_files.c.hash.in_(target_assets)
            )
        )
        conn.execute(
            update(asset_files)
            .where(asset_files.c.account_id == source.id)
            .values(account_id=target.id)
        )
        conn.execute(
            delete(asset_upload_sessions).where(asset_upload_sessions.c.account_id == source.id)
        )
        created = self.ctx.blobs.copy_account(conn, source.id, target.id)
        conn.execute(delete(blobs).where(blobs.c.account_id == source.id))
        return created

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
