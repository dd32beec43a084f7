"""The services of one control plane, built from one ServiceContext."""

from __future__ import annotations

from dataclasses import dataclass

from mayfly.services.accounts import AccountService
from mayfly.services.context import ServiceContext
from mayfly.services.kv import KVService
from mayfly.services.lifecycle import Reaper
from mayfly.services.provisioning import ProvisioningService
from mayfly.services.routing import RoutingService
from mayfly.services.scripts import ScriptService
from mayfly.services.tail import TailHub, TailService
from mayfly.services.tokens import TokenService


@dataclass
class Services:
    ctx: ServiceContext
    tokens: TokenService
    accounts: AccountService
    provisioning: ProvisioningService
    scripts: ScriptService
    routing: RoutingService
    kv: KVService
    tails: TailService
    reaper: Reaper

    @classmethod
    def build(cls, ctx: ServiceContext) -> Services:
        hub = TailHub()
        return cls(
            ctx=ctx,
            tokens=TokenService(ctx),
            accounts=AccountService(ctx),
            provisioning=ProvisioningService(ctx),
            scripts=ScriptService(ctx),
            routing=RoutingService(ctx, hub),
            tails=TailService(ctx, hub),
            kv=KVService(ctx),
            reaper=Reaper(ctx),
        )
