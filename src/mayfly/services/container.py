"""The services of one control plane, built from one ServiceContext."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mayfly.services.context import ServiceContext
from mayfly.services.identity.accounts import AccountService
from mayfly.services.identity.device_auth import DeviceAuthService
from mayfly.services.identity.memberships import MembershipService
from mayfly.services.identity.sessions import SessionService
from mayfly.services.identity.tokens import TokenService
from mayfly.services.identity.user_tokens import UserTokenService
from mayfly.services.identity.users import UserService
from mayfly.services.resources.assets import AssetService
from mayfly.services.resources.d1 import D1Service
from mayfly.services.resources.kv import KVService
from mayfly.services.resources.r2 import R2Service
from mayfly.services.resources.r2_multipart import R2Multipart
from mayfly.services.temporary.claims import ClaimService
from mayfly.services.temporary.lifecycle import Reaper
from mayfly.services.temporary.provisioning import ProvisioningService
from mayfly.services.workers.quarantine import QuarantineService
from mayfly.services.workers.routing import RoutingService
from mayfly.services.workers.schedules import ScheduleService
from mayfly.services.workers.scripts import ScriptService
from mayfly.services.workers.tail import TailHub, TailService


@dataclass
class Services:
    ctx: ServiceContext
    tokens: TokenService
    accounts: AccountService
    provisioning: ProvisioningService
    scripts: ScriptService
    assets: AssetService
    routing: RoutingService
    kv: KVService
    r2: R2Service
    r2_multipart: R2Multipart
    d1: D1Service
    tails: TailService
    reaper: Reaper
    users: UserService
    sessions: SessionService
    memberships: MembershipService
    user_tokens: UserTokenService
    claims: ClaimService
    device_auth: DeviceAuthService
    quarantine: QuarantineService
    schedules: ScheduleService

    @classmethod
    def build(cls, ctx: ServiceContext) -> Services:
        hub = TailHub()
        assets = AssetService(ctx)
        user_tokens = UserTokenService(ctx)
        r2 = R2Service(ctx)
        return cls(
            ctx=ctx,
            tokens=TokenService(ctx),
            accounts=AccountService(ctx),
            provisioning=ProvisioningService(ctx),
            scripts=ScriptService(ctx, assets),
            assets=assets,
            routing=RoutingService(ctx, hub, assets),
            tails=TailService(ctx, hub),
            kv=KVService(ctx),
            r2=r2,
            r2_multipart=R2Multipart(r2),
            d1=D1Service(ctx),
            reaper=Reaper(ctx),
            users=UserService(ctx),
            sessions=SessionService(ctx),
            memberships=MembershipService(ctx),
            user_tokens=user_tokens,
            claims=ClaimService(ctx),
            device_auth=DeviceAuthService(ctx, user_tokens),
            quarantine=QuarantineService(ctx),
            schedules=ScheduleService(ctx),
        )


class _Connection(Protocol):
    @property
    def app(self) -> Any: ...


def services_of(connection: _Connection) -> Services:
    """The Services the app serving this request (or WebSocket) was built with: api/ and pages/
    both ask through this."""
    svc: Services = connection.app.state.services
    return svc
