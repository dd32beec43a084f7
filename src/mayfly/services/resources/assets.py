"""Workers Static Assets (spec wrangler-assets.md): upload sessions, deduplicated per account.

AS1 opens a session for a manifest and answers the hashes the account does not have yet, in
buckets; AS2/AS3 upload them with the session's upload token (a JWT); once nothing is missing, a
completion token lets a version upload attach the manifest. The hash is the client's opaque key:
never shared across accounts.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Connection, delete, insert, select, update

from mayfly.errors import InvalidToken, NotFound, ValidationError
from mayfly.model import Account, AccountKind, Principal
from mayfly.services.context import ServiceContext
from mayfly.services.identity.tokens import require_usable_token
from mayfly.services.resources import quotas
from mayfly.services.resources.asset_config import check_config
from mayfly.services.resources.asset_manifest import (
    LIMITS,
    buckets_for,
    check_manifest,
    verify_contents,
)
from mayfly.storage.tables import asset_files, asset_upload_sessions

TOKEN_LIFETIME = timedelta(hours=1)
NULL_CONTENT_TYPE = "application/null"


class InvalidAssetToken(InvalidToken):
    """401, 10020 (not 10000: wrangler runs its auth-error handler on that): the message says
    what to do."""

    code, status = 10020, 401


class AssetNotFound(NotFound):
    """404, 10404: no stored asset file under that hash for the account."""

    code, status = 10404, 404


class AssetService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    # -- tokens --------------------------------------------------------------------------------

    def _token(
        self, kind: str, session_id: str, account_id: str, script: str, token_id: str
    ) -> str:
        now = self.ctx.clock.now()
        claims = {
            "typ": kind,
            "sid": session_id,
            "account_id": account_id,
            "script": script,
            "tid": token_id,  # the API token that opened the session: the JWT dies with it
            "iat": int(now.timestamp()),
            "exp": int((now + TOKEN_LIFETIME).timestamp()),
        }
        return jwt.encode(claims, self.ctx.crypto.jwt_key, algorithm="HS256")

    def _claims(self, conn: Connection, token: str, kind: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.ctx.crypto.jwt_key,
                algorithms=["HS256"],
                # Times are checked against the platform's clock below.
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidAssetToken("The assets token is not one this platform issued.") from exc
        if claims.get("typ") != kind:
            raise InvalidAssetToken(f"This is not an assets {kind} token.")
        if claims["exp"] <= self.ctx.clock.now().timestamp():
            raise InvalidAssetToken(
                "The assets token expired (tokens last one hour); deploy again to upload."
            )
        if not isinstance(claims.get("tid"), str):
            raise InvalidAssetToken("This assets token is no longer accepted; deploy again.")
        # Revoked with the API token, or with the account's claim or expiry.
        require_usable_token(conn, claims["tid"], self.ctx.clock.now())
        return claims

    # -- AS1 -------------------------------------------------------------------------------------

    def open_session(
        self, principal: Principal, account: Account, script: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        manifest = check_manifest(body.get("manifest"), LIMITS[account.kind])
        now = self.ctx.clock.now()
        session_id = secrets.token_hex(16)
        sizes: dict[str, int] = {}
        for entry in manifest.values():
            sizes[entry["hash"]] = entry["size"]
        with self.ctx.db.begin() as conn:
            stored = self._stored_hashes(conn, account.id, list(sizes))
            missing = sorted(h for h in sizes if h not in stored)
            self._check_quota(conn, account.id, account.kind, [sizes[h] for h in missing])
            conn.execute(
                insert(asset_upload_sessions).values(
                    id=session_id,
                    account_id=account.id,
                    script=script,
                    manifest=manifest,
                    missing=missing,
                    created_at=now,
                    expires_at=now + TOKEN_LIFETIME,
                )
            )
        tid = principal.token_id
        if not missing:
            return {
                "jwt": self._token("completion", session_id, account.id, script, tid),
                "buckets": [],
            }
        return {
            "jwt": self._token("upload", session_id, account.id, script, tid),
            "buckets": buckets_for([(h, sizes[h]) for h in missing]),
        }

    def _check_quota(
        self, conn: Connection, account_id: str, kind: AccountKind, new_sizes: list[int]
    ) -> None:
        """10440 before files that would take the account over its asset files or bytes."""
        if not new_sizes:
            return
        quotas.require_room(
            conn, self.ctx.settings, account_id, kind, quotas.ASSET_FILES, len(new_sizes)
        )
        quotas.require_bytes(
            conn,
            self.ctx.settings,
            account_id,
            kind,
            sum(new_sizes),
            int(self.ctx.clock.now().timestamp()),
        )

    @staticmethod
    def _stored_hashes(conn: Connection, account_id: str, hashes: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            found.update(
                conn.execute(
                    select(asset_files.c.hash).where(
                        asset_files.c.account_id == account_id, asset_files.c.hash.in_(chunk)
                    )
                ).scalars()
            )
        return found

    # -- AS2 / AS3 -------------------------------------------------------------------------------

    def upload(
        self, account_id: str, token: str, files: list[tuple[str, bytes, str | None]], encoded: bool
    ) -> tuple[bool, str | None]:
        """Store uploaded files; returns (complete, completion token when complete)."""
        with self.ctx.db.read() as conn:
            claims = self._claims(conn, token, "upload")
            if claims["account_id"] != account_id:
                raise InvalidAssetToken("This upload token is for another account.")
            found = conn.execute(
                select(asset_upload_sessions.c.manifest, asset_upload_sessions.c.missing).where(
                    asset_upload_sessions.c.id == claims["sid"]
                )
            ).first()
        if found is None:
            raise InvalidAssetToken("This upload session no longer exists; deploy again.")
        manifest, was_missing = found.manifest, set(found.missing)
        decoded = []
        for digest, data, content_type in files:
            if encoded:
                try:
                    data = base64.b64decode(data, validate=True)
                except ValueError as exc:
                    raise ValidationError(f"Asset {digest}: the body is not base64.") from exc
            ctype = None if content_type in (None, "", NULL_CONTENT_TYPE) else content_type
            decoded.append((digest, data, ctype))
        # Hashing happens here, outside the write transaction; nothing is stored on a mismatch.
        verify_contents(manifest, decoded)
        # So are the blob files (a few threads; `missing` only shrinks, so this covers the files
        # the transaction stores): it then writes a few rows per request, whatever its size.
        staging = {d: (data, ctype) for d, data, ctype in decoded if d in was_missing}
        blob_of = dict(
            zip(
                staging,
                self.ctx.blobs.stage_many(account_id, [data for data, _ in staging.values()]),
                strict=True,
            )
        )
        with self.ctx.db.begin() as conn:
            query = select(asset_upload_sessions.c.id, asset_upload_sessions.c.missing).where(
                asset_upload_sessions.c.id == claims["sid"]
            )
            if not self.ctx.db.is_sqlite:
                query = query.with_for_update()
            session = conn.execute(query).first()
            if session is None:
                raise InvalidAssetToken("This upload session no longer exists; deploy again.")
            missing = set(session.missing)
            new = {d: (data, ctype) for d, data, ctype in decoded if d in missing}
            stored = self._stored_hashes(conn, account_id, list(new))
            kind = quotas.account_kind(conn, account_id)
            self._check_quota(
                conn, account_id, kind, [len(v[0]) for d, v in new.items() if d not in stored]
            )
            self._store_many(conn, account_id, new, stored, blob_of)
            missing.difference_update(new)
            conn.execute(
                update(asset_upload_sessions)
                .where(asset_upload_sessions.c.id == session.id)
                .values(missing=sorted(missing))
            )
        if missing:
            return False, None
        return True, self._token(
            "completion", claims["sid"], account_id, claims["script"], claims["tid"]
        )

    def _store_many(
        self,
        conn: Connection,
        account_id: str,
        new: dict[str, tuple[bytes, str | None]],
        stored: set[str],
        blob_of: dict[str, str],
    ) -> None:
        """Blob rows and asset-file rows for the files the account does not have yet, in one
        insert each (the blob files were staged before the transaction)."""
        fresh = {d: v for d, v in new.items() if d not in stored}
        for digest, (data, _) in fresh.items():
            if digest not in blob_of:  # not staged before: cannot happen, `missing` only shrinks
                blob_of[digest] = self.ctx.blobs.stage(account_id, data)
        self.ctx.blobs.record_many(
            conn, account_id, [(blob_of[d], data) for d, (data, _) in fresh.items()]
        )
        if fresh:
            conn.execute(
                insert(asset_files),
                [
                    {
                        "account_id": account_id,
                        "hash": digest,
                        "blob_sha256": blob_of[digest],
                        "content_type": ctype,
                        "size": len(data),
                    }
                    for digest, (data, ctype) in fresh.items()
                ],
            )

    # -- attaching to a version ------------------------------------------------------------------

    def resolve_for_version(
        self,
        conn: Connection,
        account: Account,
        script: str,
        assets: Any,
        has_worker: bool,
        messages: list[str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """metadata.assets → what a version stores: {config, manifest {path: hash}}; lines
        skipped in _redirects/_headers are added to `messages`. `config` is check_config's
        result when the caller parsed it before its write transaction (a regex scan of up to
        200 kB)."""
        if assets is None:
            return None
        if not isinstance(assets, dict) or not isinstance(assets.get("jwt"), str):
            raise ValidationError(
                'metadata.assets needs {"jwt": <completion token>, "config": {}}.'
            )
        claims = self._claims(conn, assets["jwt"], "completion")
        if claims["account_id"] != account.id or claims["script"] != script:
            raise ValidationError("This assets completion token is for another Worker.")
        session = conn.execute(
            select(asset_upload_sessions).where(asset_upload_sessions.c.id == claims["sid"])
        ).first()
        if session is None:
            raise ValidationError("The asset upload session is gone; deploy again.")
        hashes = {e["hash"] for e in session.manifest.values()}
        stored = self._stored_hashes(conn, account.id, list(hashes))
        if stored != hashes:
            raise ValidationError(
                "Some assets of this deployment were never uploaded; deploy again."
            )
        return {
            "config": (
                config
                if config is not None
                else check_config(assets.get("config"), has_worker, messages)
            ),
            "manifest": {path: entry["hash"] for path, entry in session.manifest.items()},
        }

    # -- serving -----------------------------------------------------------------------------------

    def content_types(self, conn: Connection, account_id: str, hashes: list[str]) -> dict[str, Any]:
        types: dict[str, Any] = {}
        for start in range(0, len(hashes), 500):
            rows = conn.execute(
                select(asset_files.c.hash, asset_files.c.content_type).where(
                    asset_files.c.account_id == account_id,
                    asset_files.c.hash.in_(hashes[start : start + 500]),
                )
            ).all()
            types.update({r.hash: r.content_type for r in rows})
        return types

    def read(self, account_id: str, digest: str) -> tuple[bytes, str | None]:
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(asset_files).where(
                    asset_files.c.account_id == account_id, asset_files.c.hash == digest
                )
            ).first()
            if row is None:
                raise AssetNotFound(f"Asset {digest} not found.")
            return self.ctx.blobs.get(conn, account_id, row.blob_sha256), row.content_type

    def purge_sessions(self, conn: Connection, now: datetime) -> None:
        conn.execute(
            delete(asset_upload_sessions).where(
                asset_upload_sessions.c.expires_at <= now - TOKEN_LIFETIME
            )
        )
