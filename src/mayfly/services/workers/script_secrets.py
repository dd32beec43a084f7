"""A Worker's secrets: each change is a new version (deployed, or not for `versions secret`)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mayfly.errors import ScriptNotFound, SecretNotFound, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.core import audit
from mayfly.services.workers.script_base import ScriptBase
from mayfly.services.workers.uploads import (
    BINDING_NAME_RE,
    check_env_var_count,
    check_env_var_size,
)
from mayfly.services.workers.versions import copy_version
from mayfly.storage.tables import versions


class ScriptSecrets(ScriptBase):
    def _deploy_secret_change(
        self, conn: Connection, row: Any, version_id: str, author: str, now: datetime
    ) -> None:
        """A secret change deploys its new version at once, annotated as Cloudflare does."""
        self._deploy(
            conn,
            row,
            version_id,
            annotations={"workers/triggered_by": "secret"},
            author=author,
            source="api",
            now=now,
        )

    async def put_secret(
        self, principal: Principal, account: Account, name: str, body: dict[str, Any]
    ) -> dict[str, str]:
        secret_name, text = body.get("name"), body.get("text")
        kind = body.get("type", "secret_text")
        if kind != "secret_text":
            raise ValidationError(f"Secret type {kind!r} is not supported; use secret_text.")
        if not isinstance(secret_name, str) or not BINDING_NAME_RE.match(secret_name):
            raise ValidationError(f"Secret name {secret_name!r} is not a valid identifier.")
        if not isinstance(text, str):
            raise ValidationError("A secret needs a string `text`.")
        check_env_var_size(secret_name, "secret_text", text)
        binding = {
            "name": secret_name,
            "type": "secret_text",
            "ciphertext": self.ctx.crypto.encrypt(text),
        }
        await asyncio.to_thread(
            self._change_bindings, principal, account, name, secret_name, binding
        )
        await self._invalidate(account, [name])
        return {"name": secret_name, "type": "secret_text"}

    async def delete_secret(
        self, principal: Principal, account: Account, name: str, secret_name: str
    ) -> None:
        await asyncio.to_thread(self._change_bindings, principal, account, name, secret_name, None)
        await self._invalidate(account, [name])

    def _change_bindings(
        self,
        principal: Principal,
        account: Account,
        name: str,
        binding_name: str,
        replacement: dict[str, Any] | None,
    ) -> str:
        """A secret change is a new version (same code) deployed at once, as on Cloudflare."""
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            current = self._version_row(conn, row.id, row.current_version_id or "")
            if current is None:
                raise ScriptNotFound(f"Worker {name!r} has no deployed version.")
            old = list(current.bindings or [])
            if replacement is None and not any(
                b["name"] == binding_name and b["type"] == "secret_text" for b in old
            ):
                raise SecretNotFound(f"Worker {name!r} has no secret named {binding_name!r}.")
            bindings = [b for b in old if b["name"] != binding_name]
            if replacement is not None:
                bindings.append(replacement)
                check_env_var_count(bindings)
            pruned, _ = self._prune_versions(conn, account, row, keep_room=1)
            version_id = copy_version(
                conn, current, bindings, {"workers/triggered_by": "secret"}, now, author
            )
            self._deploy_secret_change(conn, row, version_id, author, now)
            event = "secret.deleted" if replacement is None else "secret.put"
            audit.record(conn, account.id, event, author, now, script=name, secret=binding_name)
        if pruned:
            self._collect_garbage(account.id)
        return version_id

    async def patch_secrets(
        self,
        principal: Principal,
        account: Account,
        name: str,
        changes: Any,
        *,
        deploy: bool,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Several secrets set (`{name: {text, type}}`) or removed (`{name: null}`) in one new
        version, as a JSON merge patch: `secret bulk` deploys it (based on the deployed version),
        `versions secret put|bulk|delete` only uploads it (based on the newest version)."""
        if not isinstance(changes, dict) or not changes:
            raise ValidationError("Send the secrets as an object: {name: {text, type} or null}.")
        replacements: dict[str, dict[str, Any] | None] = {}
        for secret_name, change in changes.items():
            if not BINDING_NAME_RE.match(secret_name):
                raise ValidationError(f"Secret name {secret_name!r} is not a valid identifier.")
            if change is None:
                replacements[secret_name] = None
                continue
            if not isinstance(change, dict) or not isinstance(change.get("text"), str):
                raise ValidationError(f"Secret {secret_name!r} needs a string `text` (or null).")
            if change.get("type", "secret_text") != "secret_text":
                raise ValidationError(f"Secret {secret_name!r}: only secret_text is supported.")
            check_env_var_size(secret_name, "secret_text", change["text"])
            replacements[secret_name] = {
                "name": secret_name,
                "type": "secret_text",
                "ciphertext": self.ctx.crypto.encrypt(change["text"]),
            }
        version = await asyncio.to_thread(
            self._patch_secrets_sync, principal, account, name, replacements, deploy, annotations
        )
        if deploy:
            await self._invalidate(account, [name])
        return version

    def _patch_secrets_sync(
        self,
        principal: Principal,
        account: Account,
        name: str,
        replacements: dict[str, dict[str, Any] | None],
        deploy: bool,
        annotations: dict[str, str] | None,
    ) -> dict[str, Any]:
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        marks = {"workers/triggered_by": "secret", **(annotations or {})}
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            if deploy:
                base = self._version_row(conn, row.id, row.current_version_id or "")
            else:
                base = conn.execute(
                    select(versions)
                    .where(versions.c.script_id == row.id)
                    .order_by(versions.c.number.desc())
                    .limit(1)
                ).first()
            if base is None:
                raise ScriptNotFound(f"Worker {name!r} has no version to add secrets to.")
            bindings = [b for b in base.bindings or [] if b["name"] not in replacements]
            bindings += [b for b in replacements.values() if b is not None]
            check_env_var_count(bindings)
            pruned, _ = self._prune_versions(conn, account, row, keep_room=1)
            version_id = copy_version(conn, base, bindings, marks, now, author)
            if deploy:
                self._deploy_secret_change(conn, row, version_id, author, now)
            audit.record(
                conn,
                account.id,
                "secret.bulk",
                author,
                now,
                script=name,
                secret=",".join(replacements),
            )
            rendered = self._render(conn, self._version_row(conn, row.id, version_id), account)
        if pruned:
            self._collect_garbage(account.id)
        return rendered
