"""R2 multipart uploads: parts are blobs of the account (counted against its quota as they
arrive); completing one concatenates them into the object's blob in one transaction with the
object's row, and aborting one deletes its parts."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import delete, insert, select

from mayfly.errors import ObjectNotFound, ValidationError
from mayfly.services.resources import quotas
from mayfly.services.resources.r2 import R2Service
from mayfly.services.resources.r2_blobs import hold_blob, release_blobs
from mayfly.services.resources.r2_meta import (
    check_key,
    custom_metadata,
    http_metadata,
    multipart_etag,
)
from mayfly.storage.resource_tables import r2_parts, r2_uploads

MAX_PARTS = 10_000
# Cloudflare's minimum for every part but the last.
MIN_PART_BYTES = 5 * 1024 * 1024


class R2Multipart:
    def __init__(self, r2: R2Service):
        self.r2 = r2
        self.ctx = r2.ctx

    def create(self, bucket_id: str, key: str, http: Any = None, custom: Any = None) -> str:
        check_key(key)
        meta, extra = http_metadata(http), custom_metadata(custom)
        upload_id = secrets.token_urlsafe(32)
        with self.ctx.db.begin() as conn:
            account_id = self.r2._account_of(conn, bucket_id)
            conn.execute(
                insert(r2_uploads).values(
                    id=upload_id,
                    bucket_id=bucket_id,
                    account_id=account_id,
                    key=key,
                    created_at=self.ctx.clock.now(),
                    http_metadata=meta,
                    custom_metadata=extra,
                )
            )
        return upload_id

    def _upload(self, conn: Any, bucket_id: str, key: str, upload_id: str) -> Any:
        row = conn.execute(
            select(r2_uploads).where(
                r2_uploads.c.id == upload_id,
                r2_uploads.c.bucket_id == bucket_id,
                r2_uploads.c.key == key,
            )
        ).first()
        if row is None:
            raise ObjectNotFound(f"The multipart upload {upload_id!r} of {key!r} does not exist.")
        return row

    def upload_part(
        self, bucket_id: str, key: str, upload_id: str, part_number: int, data: bytes
    ) -> dict[str, Any]:
        if not 1 <= part_number <= MAX_PARTS:
            raise ValidationError(f"partNumber must be between 1 and {MAX_PARTS}.")
        self.r2.check_size(len(data))
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        with self.ctx.db.read() as conn:
            account_id = self.r2._account_of(conn, bucket_id)
        digest = self.ctx.blobs.stage(account_id, data)
        now = int(self.ctx.clock.now().timestamp())
        with self.ctx.db.begin() as conn:
            upload = self._upload(conn, bucket_id, key, upload_id)
            old = conn.execute(
                delete(r2_parts)
                .where(r2_parts.c.upload_id == upload_id, r2_parts.c.part_number == part_number)
                .returning(r2_parts.c.blob_sha256, r2_parts.c.size)
            ).first()
            quotas.require_bytes(
                conn,
                self.ctx.settings,
                upload.account_id,
                quotas.account_kind(conn, upload.account_id),
                len(data),
                now,
                freeing=int(old.size) if old else 0,
            )
            hold_blob(conn, upload.account_id, digest)
            self.ctx.blobs.put(conn, upload.account_id, data, digest)
            conn.execute(
                insert(r2_parts).values(
                    upload_id=upload_id,
                    part_number=part_number,
                    account_id=upload.account_id,
                    blob_sha256=digest,
                    size=len(data),
                    etag=etag,
                )
            )
            if old is not None and old.blob_sha256 != digest:
                release_blobs(conn, self.ctx, upload.account_id, {old.blob_sha256})
        return {"partNumber": part_number, "etag": etag}

    def complete(
        self, bucket_id: str, key: str, upload_id: str, parts: Any
    ) -> dict[str, Any] | None:
        """The object made of `parts` ([{partNumber, etag}], in order)."""
        if not isinstance(parts, list) or not parts:
            raise ValidationError("Completing an upload needs its parts: [{partNumber, etag}].")
        with self.ctx.db.read() as conn:
            upload = self._upload(conn, bucket_id, key, upload_id)
            stored = {
                row.part_number: row
                for row in conn.execute(
                    select(r2_parts).where(r2_parts.c.upload_id == upload_id)
                ).all()
            }
            chosen = []
            for index, part in enumerate(parts):
                number = part.get("partNumber") if isinstance(part, dict) else None
                row = stored.get(number) if isinstance(number, int) else None
                if row is None or str(part.get("etag", "")).strip('"') != row.etag:
                    raise ValidationError(
                        f"Part {number!r} was not uploaded, or its etag does not match."
                    )
                if index < len(parts) - 1 and row.size < MIN_PART_BYTES:
                    raise ValidationError(
                        f"Every part but the last must be at least {MIN_PART_BYTES} bytes "
                        f"(part {number} has {row.size})."
                    )
                chosen.append(row)
            total = sum(int(row.size) for row in chosen)
            self.r2.check_size(total)
            data = b"".join(
                self.ctx.blobs.get(conn, upload.account_id, row.blob_sha256) for row in chosen
            )
        digest = self.ctx.blobs.stage(upload.account_id, data)
        return self.r2._store(
            bucket_id,
            key,
            digest,
            data,
            total,
            multipart_etag([row.etag for row in chosen]),
            {},
            dict(upload.http_metadata or {}),
            dict(upload.custom_metadata or {}),
            None,
            upload_id=upload_id,
        )

    def abort(self, bucket_id: str, key: str, upload_id: str) -> None:
        with self.ctx.db.begin() as conn:
            upload = self._upload(conn, bucket_id, key, upload_id)
            gone = set(
                conn.execute(
                    delete(r2_parts)
                    .where(r2_parts.c.upload_id == upload_id)
                    .returning(r2_parts.c.blob_sha256)
                ).scalars()
            )
            conn.execute(delete(r2_uploads).where(r2_uploads.c.id == upload_id))
            release_blobs(conn, self.ctx, upload.account_id, gone)
