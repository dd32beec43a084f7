"""A Worker's script-level settings (logpush, observability, tags, tail consumers), workers.dev."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from mayfly.errors import ValidationError
from mayfly.model import Account
from mayfly.services.workers.script_reads import ScriptReads
from mayfly.services.workers.uploads import DEFAULT_COMPATIBILITY_DATE
from mayfly.storage.tables import scripts


def check_script_settings(body: dict[str, Any]) -> None:
    """Each setting has the type Cloudflare gives it, or nothing is stored (a 400)."""
    if not isinstance(body.get("logpush", False), bool):
        raise ValidationError("`logpush` must be true or false.")
    if not isinstance(body.get("observability", {}), dict):
        raise ValidationError('`observability` must be an object, like {"enabled": true}.')
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValidationError("`tags` must be an array of strings.")
    consumers = body.get("tail_consumers", [])
    if not isinstance(consumers, list) or not all(
        isinstance(c, dict) and isinstance(c.get("service"), str) for c in consumers
    ):
        raise ValidationError('`tail_consumers` must be an array of {"service": "<Worker>"}.')


class ScriptSettings(ScriptReads):
    def settings(self, account: Account, name: str) -> dict[str, Any]:
        row, version = self.current(account, name)
        runtime = version["resources"]["script_runtime"] if version else {}
        return {
            "bindings": self.current_bindings(account, name),
            "compatibility_date": runtime.get("compatibility_date", DEFAULT_COMPATIBILITY_DATE),
            "compatibility_flags": runtime.get("compatibility_flags", []),
            "usage_model": "standard",
            "logpush": bool((row.settings or {}).get("logpush", False)),
            "observability": (row.settings or {}).get("observability", {"enabled": False}),
            "tags": (row.settings or {}).get("tags", []),
            "tail_consumers": (row.settings or {}).get("tail_consumers", []),
        }

    def patch_settings(self, account: Account, name: str, body: dict[str, Any]) -> dict[str, Any]:
        allowed = {"observability", "tags", "logpush", "tail_consumers"}
        unknown = set(body) - allowed
        if unknown:
            raise ValidationError(f"Unsupported script settings: {', '.join(sorted(unknown))}.")
        check_script_settings(body)
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            merged = {**(row.settings or {}), **body}
            conn.execute(update(scripts).where(scripts.c.id == row.id).values(settings=merged))
        return self.settings(account, name)

    async def set_subdomain_enabled(
        self, account: Account, name: str, enabled: bool
    ) -> dict[str, bool]:
        def change() -> None:
            with self.ctx.db.begin() as conn:
                row = self._require_script(conn, account.id, name)
                conn.execute(
                    update(scripts).where(scripts.c.id == row.id).values(subdomain_enabled=enabled)
                )

        await asyncio.to_thread(change)
        await self._invalidate(account, [name])
        return {"enabled": enabled, "previews_enabled": False}
