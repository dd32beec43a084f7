"""Temporary accounts for agents: proof-of-work challenge, then an account, a token, a claim URL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.errors import ProofOfWorkInvalid, RateLimited, ValidationError
from mayfly.model import ProvisionedAccount, iso_seconds
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.crypto import hash_token
from mayfly.services.core.names import random_name
from mayfly.services.core.ratelimit import SlidingWindowLimiter
from mayfly.services.identity.accounts import get_account, name_taken
from mayfly.services.identity.tokens import create_token
from mayfly.services.temporary import pow
from mayfly.services.temporary.difficulty import AdaptiveDifficulty, Difficulty
from mayfly.services.temporary.events import EventService, take_account
from mayfly.services.temporary.taints import WHY, AddressTaint, TaintService
from mayfly.storage.tables import accounts, used_challenges


class ProvisioningService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        s = ctx.settings
        self.challenge_limiter = SlidingWindowLimiter(
            s.challenges_per_minute, 60, "proof-of-work challenges from this address"
        )
        self.account_limiter = SlidingWindowLimiter(
            s.accounts_per_hour, 3600, "temporary accounts from this address"
        )
        self.adaptive = AdaptiveDifficulty(s)
        self.events = EventService(ctx)
        self.taints = TaintService(ctx)

    def difficulty(self, client: str | None = None) -> Difficulty:
        """The work a challenge issued now asks (for client, or platform-wide when None)."""
        return self.adaptive.difficulty(client, now=self.ctx.clock.now().timestamp())

    def challenge(self, client: str) -> dict[str, Any]:
        """A signed challenge (blocking: reads whether the address is tainted)."""
        now = self.ctx.clock.now()
        self.challenge_limiter.hit(client, now.timestamp())
        s = self.ctx.settings
        if self.taints.active(client) is not None:
            work = self.adaptive.maximum()
        else:
            work = self.adaptive.difficulty(client, now=now.timestamp())
        token, challenge = pow.issue(self.ctx.crypto, work.k, work.g, now, s.challenge_ttl)
        return {
            "challengeToken": token,
            "seed": pow.b64url(challenge.seed),
            "k": challenge.k,
            "g": challenge.g,
            # Not read by wrangler (it sends Cloudflare's); our CLI shows and sends these.
            "termsOfService": s.terms_url,
            "privacyPolicy": s.privacy_url,
        }

    async def create(self, body: dict[str, Any], client: str) -> ProvisionedAccount:
        """Verify the solution (off the event loop), then create the account in one transaction."""
        if body.get("acceptTermsOfService") != "yes":
            raise ValidationError('Accept the terms of service with "acceptTermsOfService": "yes".')
        token = body.get("challengeToken")
        solution = body.get("solution")
        checkpoints = solution.get("checkpoints") if isinstance(solution, dict) else None
        if not isinstance(token, str) or not isinstance(checkpoints, str):
            raise ProofOfWorkInvalid(
                "Send challengeToken and solution.checkpoints from a solved challenge."
            )
        event_code = event_code_of(body)
        now = self.ctx.clock.now()
        challenge = pow.open_token(self.ctx.crypto, token, now)
        await asyncio.to_thread(pow.verify, challenge, checkpoints, self.ctx.settings.pow_samples)
        taint = await asyncio.to_thread(self.taints.active, client)
        if taint is not None:
            self._check_tainted(challenge, taint, event_code is None)
        if event_code is None:
            self.account_limiter.hit(client, now.timestamp())
        created = await asyncio.to_thread(self._create_account, challenge, client, event_code)
        # An event's accounts are bounded by its budget: they do not raise the room's work.
        self.adaptive.record(client if event_code is None else None, now.timestamp())
        return created

    def _check_tainted(self, challenge: pow.Challenge, taint: AddressTaint, limited: bool) -> None:
        """A tainted address (taints.py): the challenge must have asked the maximum work (one
        issued before the taint, or to another address, asked less), and without an event code
        its own hourly allowance applies."""
        now = self.ctx.clock.now()
        until = iso_seconds(taint.until)
        if challenge.k * challenge.g < self.adaptive.maximum().work:
            raise ProofOfWorkInvalid(
                f"Temporary accounts from this address cost the maximum proof of work until "
                f"{until}: {WHY}. This challenge asked less; request a new one and solve it."
            )
        if not limited:
            return
        # The accounts created within the hour before the taint count too: the allowance drops.
        allowed = self.ctx.settings.tainted_accounts_per_hour
        wait = self.account_limiter.retry_after(taint.address, now.timestamp(), limit=allowed)
        if wait:
            # Once the taint ends, the address's usual allowance applies again.
            wait = min(wait, max(1, taint.seconds_left(now)))
            raise RateLimited(
                f"Too many temporary accounts from this address: {WHY} (a Worker of one of "
                f"them was quarantined), so until {until} it may create only {allowed} an hour. "
                f"Retry in {wait} s, keep using an account you already have (claim it to keep "
                "it), or ask the platform's operator.",
                retry_after=wait,
            )

    def _create_account(
        self, challenge: pow.Challenge, client: str, event_code: str | None
    ) -> ProvisionedAccount:
        s = self.ctx.settings
        now = self.ctx.clock.now()
        account_id = secrets.token_hex(16)
        claim_token = secrets.token_urlsafe(32)
        for _ in range(5):  # retried only when a concurrent request took the same name
            try:
                with self.ctx.db.begin() as conn:
                    try:
                        conn.execute(
                            insert(used_challenges).values(
                                id=challenge.id,
                                expires_at=now + timedelta(seconds=s.challenge_ttl + 60),
                            )
                        )
                    except IntegrityError as exc:
                        raise ProofOfWorkInvalid(
                            "This proof-of-work challenge was already used; request a new one."
                        ) from exc
                    event = take_account(conn, event_code, now) if event_code else None
                    ttl = event.ttl if event is not None else s.temporary_ttl
                    expires_at = now + timedelta(seconds=ttl)
                    live = conn.execute(
                        select(func.count())
                        .select_from(accounts)
                        .where(accounts.c.kind == "temporary", accounts.c.expires_at > now)
                    ).scalar_one()
                    if live >= s.max_live_temporary:
                        raise RateLimited(
                            "The platform has as many temporary accounts as it allows; "
                            "try again in a few minutes.",
                            retry_after=60,
                        )
                    name = free_name(conn)
                    conn.execute(
                        insert(accounts).values(
                            id=account_id,
                            name=name,
                            kind="temporary",
                            created_at=now,
                            expires_at=expires_at,
                            claim_token_hash=hash_token(claim_token),
                            created_by_ip=client,
                            event_id=event.id if event is not None else None,
                        )
                    )
                    _, api_token = create_token(
                        conn,
                        account_id=account_id,
                        kind="temporary",
                        name="temporary account token",
                        now=now,
                        expires_at=expires_at,
                    )
                    audit.record(
                        conn,
                        account_id,
                        "account.provisioned",
                        "agent",
                        now,
                        expires_at=expires_at.isoformat(),
                        **({"event_name": event.name, "event_id": event.id} if event else {}),
                    )
                    account = get_account(conn, account_id)
            except IntegrityError:
                continue
            assert account is not None
            return ProvisionedAccount(
                account=account,
                api_token=api_token,
                claim_url=f"{s.public_url}/claim/{claim_token}",
            )
        raise RateLimited("Could not find a free account name; try again.", retry_after=1)


def event_code_of(body: dict[str, Any]) -> str | None:
    """The event code of a create-account body (`eventCode`, as wrangler's --event-code sends
    it), trimmed; None without one."""
    code = body.get("eventCode")
    if code is None:
        return None
    if not isinstance(code, str) or len(code.strip()) > 64:
        raise ValidationError("The event code is malformed. Check it and try again.")
    return code.strip() or None


def free_name(conn: Connection) -> str:
    """A two-word name no account or tombstone holds (a number is added if the words run out)."""
    for attempt in range(60):
        name = random_name() if attempt < 40 else f"{random_name()}-{secrets.randbelow(10000)}"
        if not name_taken(conn, name):
            return name
    raise RateLimited("Could not find a free account name; try again.", retry_after=1)
