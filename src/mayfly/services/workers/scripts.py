"""Workers (scripts): the service the API calls, made of its concerns, and deleting a Worker."""

from __future__ import annotations

import asyncio

from mayfly.model import Account, Principal
from mayfly.services.core import audit
from mayfly.services.workers.cleanup import collect_garbage_blobs, delete_script_rows
from mayfly.services.workers.deploys import ScriptDeploys
from mayfly.services.workers.script_reads import ScriptReads
from mayfly.services.workers.script_secrets import ScriptSecrets
from mayfly.services.workers.script_settings import ScriptSettings


class ScriptService(ScriptDeploys, ScriptSettings, ScriptReads, ScriptSecrets):
    """Upload and deploy (deploys.py), read (script_reads.py), settings (script_settings.py),
    secrets (script_secrets.py); deleting a Worker is here."""

    async def delete(self, principal: Principal | None, account: Account, name: str) -> None:
        await asyncio.to_thread(self._delete_sync, principal, account, name)
        await self._invalidate(account, [name])

    def _delete_sync(self, principal: Principal | None, account: Account, name: str) -> None:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            delete_script_rows(conn, row.id)
            collect_garbage_blobs(conn, self.ctx, account.id)
            audit.record(
                conn,
                account.id,
                "script.deleted",
                self._author(principal, account),
                now,
                script=name,
            )
