"""R2: buckets per account, objects stored as the account's blobs (content-addressed: equal
objects share one blob; a blob goes when nothing names it any more).

The API reaches a bucket by its name within the caller's account; the data plane by the bucket id
the platform put in the binding's props (routing.py), never by a name the tenant chose.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    ObjectNotFound,
    PayloadTooLarge,
    ValidationError,
)
from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.cursors import decode_cursor, encode_cursor
from mayfly.services.core.owned import named_row
from mayfly.services.resources import quotas
from mayfly.services.resources.kv_store import prefix_successor
from mayfly.services.resources.r2_blobs import hold_blob, release_blobs
from mayfly.services.resources.r2_meta import (
    STORAGE_CLASSES,
    check_bucket_name,
    check_key,
    conditions_met,
    custom_metadata,
    digests,
    expected_checksums,
    http_metadata,
    iso,
    render,
    resolve_range,
)
from mayfly.services.resources.r2_uploads import UploadGate
from mayfly.storage.resource_tables import r2_buckets, r2_objects, r2_parts, r2_uploads

LIST_LIMIT = 1000
STORE_ATTEMPTS = 3


@dataclass(frozen=True)
class Read:
    """An object's description, and its bytes (None: a head, or a precondition that failed)."""

    object: dict[str, Any]
    body: bytes | None


def render_bucket(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "creation_date": iso(row.created_at),
        "location": "ENAM",
        "storage_class": row.storage_class,
    }


class R2Service:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        # Object bodies being received (api/r2.py, api/internal_r2.py): see r2_uploads.py.
        self.uploads = UploadGate(
            ctx.settings.r2_uploads_per_account, ctx.settings.r2_upload_memory_bytes
        )

    # -- buckets -----------------------------------------------------------------------------

    def create_bucket(
        self, account: Account, name: Any, storage_class: Any, actor: str
    ) -> dict[str, Any]:
        name = check_bucket_name(name)
        storage_class = storage_class or "Standard"
        if storage_class not in STORAGE_CLASSES:
            raise ValidationError(f"storageClass must be one of {', '.join(STORAGE_CLASSES)}.")
        now = self.ctx.clock.now()
        try:
            with self.ctx.db.begin() as conn:
                quotas.require_room(
                    conn, self.ctx.settings, account.id, account.kind, quotas.R2_BUCKETS
                )
                if named_row(conn, r2_buckets.c.name, account.id, name) is not None:
                    raise BucketExists(f"The bucket {name!r} already exists in this account.")
                bucket_id = secrets.token_hex(16)
                conn.execute(
                    insert(r2_buckets).values(
                        id=bucket_id,
                        account_id=account.id,
                        name=name,
                        created_at=now,
                        storage_class=storage_class,
                    )
                )
                audit.record(conn, account.id, "r2.bucket_created", actor, now, bucket=name)
                row = named_row(conn, r2_buckets.c.name, account.id, name)
        except IntegrityError as exc:
            raise BucketExists(f"The bucket {name!r} already exists in this account.") from exc
        return render_bucket(row)

    def _bucket(self, conn: Connection, account: Account, name: str) -> Any:
        row = named_row(conn, r2_buckets.c.name, account.id, name)
        if row is None:
            raise BucketNotFound(f"The bucket {name!r} does not exist in this account.")
        return row

    def list_buckets(self, account: Account, name_contains: str = "") -> list[dict[str, Any]]:
        query = select(r2_buckets).where(r2_buckets.c.account_id == account.id)
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(r2_buckets.c.name)).all()
        return [render_bucket(r) for r in rows if name_contains in r.name]

    def get_bucket(self, account: Account, name: str) -> dict[str, Any]:
        with self.ctx.db.read() as conn:
            return render_bucket(self._bucket(conn, account, name))

    def bucket_id(self, account: Account, name: str) -> str:
        with self.ctx.db.read() as conn:
            return str(self._bucket(conn, account, name).id)

    def delete_bucket(self, account: Account, name: str, actor: str) -> None:
        """Only an empty bucket (as on Cloudflare); unfinished multipart uploads go with it."""
        with self.ctx.db.begin() as conn:
            bucket = self._bucket(conn, account, name)
            if conn.execute(
                select(exists().where(r2_objects.c.bucket_id == bucket.id))
            ).scalar_one():
                raise BucketNotEmpty(f"The bucket {name!r} is not empty: delete its objects first.")
            uploads = select(r2_uploads.c.id).where(r2_uploads.c.bucket_id == bucket.id)
            parts = set(
                conn.execute(
                    delete(r2_parts)
                    .where(r2_parts.c.upload_id.in_(uploads))
                    .returning(r2_parts.c.blob_sha256)
                ).scalars()
            )
            conn.execute(delete(r2_uploads).where(r2_uploads.c.bucket_id == bucket.id))
            conn.execute(delete(r2_buckets).where(r2_buckets.c.id == bucket.id))
            release_blobs(conn, self.ctx, account.id, parts)
            audit.record(
                conn, account.id, "r2.bucket_deleted", actor, self.ctx.clock.now(), bucket=name
            )

    # -- objects (by bucket id: the data plane's view, and the API's once it found the id) ---

    def _account_of(self, conn: Connection, bucket_id: str) -> str:
        account_id = conn.execute(
            select(r2_buckets.c.account_id).where(r2_buckets.c.id == bucket_id)
        ).scalar_one_or_none()
        if account_id is None:
            raise BucketNotFound("The bucket does not exist.")
        return str(account_id)

    def check_size(self, size: int) -> None:
        limit = self.ctx.settings.max_r2_object_bytes
        if size > limit:
            raise PayloadTooLarge(f"R2 objects are at most {limit} bytes (max_r2_object_bytes).")

    def put_object(
        self,
        bucket_id: str,
        key: str,
        data: bytes,
        *,
        http: Any = None,
        custom: Any = None,
        checksums: Any = None,
        only_if: Any = None,
    ) -> dict[str, Any] | None:
        """Store an object; None when `only_if` does not hold for the object it would replace."""
        check_key(key)
        self.check_size(len(data))
        meta, extra = http_metadata(http), custom_metadata(custom)
        sums = digests(data, expected_checksums(checksums))
        with self.ctx.db.read() as conn:
            account_id = self._account_of(conn, bucket_id)
        staged = self.ctx.blobs.stage(account_id, data)
        return self._store(
            bucket_id, key, staged, data, len(data), sums.md5, sums.others, meta, extra, only_if
        )

    def _store(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """`_store_once`, again when a concurrent writer created the same key first (the
        existing row is locked, so only the creation of a new key can collide)."""
        for _ in range(STORE_ATTEMPTS - 1):
            try:
                return self._store_once(*args, **kwargs)
            except IntegrityError:
                continue
        return self._store_once(*args, **kwargs)

    def _store_once(
        self,
        bucket_id: str,
        key: str,
        digest: str,
        data: bytes,
        size: int,
        etag: str,
        checksums: dict[str, str],
        meta: dict[str, str],
        extra: dict[str, str],
        only_if: Any,
        upload_id: str | None = None,
    ) -> dict[str, Any] | None:
        """The write of an object (`upload_id`: the multipart upload it completes, whose parts
        go in the same transaction); the object it replaces is locked, so `only_if` is checked
        against what is replaced."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            account_id = self._account_of(conn, bucket_id)
            old = conn.execute(
                select(r2_objects)
                .where(r2_objects.c.bucket_id == bucket_id, r2_objects.c.key == key)
                .with_for_update()
            ).first()
            if only_if and not conditions_met(
                only_if, old.etag if old else None, old.uploaded if old else None
            ):
                return None
            release: set[str] = set()
            freed_bytes = 0
            if upload_id is not None:
                for part_digest, part_size in conn.execute(
                    delete(r2_parts)
                    .where(r2_parts.c.upload_id == upload_id)
                    .returning(r2_parts.c.blob_sha256, r2_parts.c.size)
                ):
                    release.add(part_digest)
                    freed_bytes += int(part_size)
                conn.execute(delete(r2_uploads).where(r2_uploads.c.id == upload_id))
            quotas.require_bytes(
                conn,
                self.ctx.settings,
                account_id,
                quotas.account_kind(conn, account_id),
                size,
                int(now.timestamp()),
                freeing=(int(old.size) if old else 0) + freed_bytes,
            )
            hold_blob(conn, account_id, digest)
            self.ctx.blobs.put(conn, account_id, data, digest)
            row = {
                "bucket_id": bucket_id,
                "key": key,
                "account_id": account_id,
                "blob_sha256": digest,
                "size": size,
                "etag": etag,
                "version": secrets.token_hex(16),
                "uploaded": now,
                "http_metadata": meta,
                "custom_metadata": extra,
                "checksums": checksums,
            }
            if old is None:
                conn.execute(insert(r2_objects).values(**row))
            else:  # in place: a concurrent writer waiting on this row then replaces ours
                conn.execute(
                    update(r2_objects)
                    .where(r2_objects.c.bucket_id == bucket_id, r2_objects.c.key == key)
                    .values(**row)
                )
            if old is not None and old.blob_sha256 != digest:
                release.add(old.blob_sha256)
            release_blobs(conn, self.ctx, account_id, release)
            stored = conn.execute(
                select(r2_objects).where(
                    r2_objects.c.bucket_id == bucket_id, r2_objects.c.key == key
                )
            ).one()
        return render(stored)

    def get_object(
        self,
        bucket_id: str,
        key: str,
        *,
        only_if: Any = None,
        range_spec: Any = None,
        head: bool = False,
    ) -> Read:
        with self.ctx.db.read() as conn:
            account_id = self._account_of(conn, bucket_id)
            row = conn.execute(
                select(r2_objects).where(
                    r2_objects.c.bucket_id == bucket_id, r2_objects.c.key == key
                )
            ).first()
            if row is None:
                raise ObjectNotFound(f"The object {key!r} does not exist.")
            described = render(row)
            if head or not conditions_met(only_if, row.etag, row.uploaded):
                return Read(described, None)
            span = resolve_range(range_spec, int(row.size))
            data = self.ctx.blobs.get(conn, account_id, row.blob_sha256)
        if span is not None:
            offset, length = span
            data = data[offset : offset + length]
            described["range"] = {"offset": offset, "length": length}
        return Read(described, data)

    def delete_objects(self, bucket_id: str, keys: list[str]) -> None:
        if len(keys) > 1000:
            raise ValidationError("Delete at most 1000 keys at once.")
        with self.ctx.db.begin() as conn:
            account_id = self._account_of(conn, bucket_id)
            gone = set(
                conn.execute(
                    delete(r2_objects)
                    .where(r2_objects.c.bucket_id == bucket_id, r2_objects.c.key.in_(keys))
                    .returning(r2_objects.c.blob_sha256)
                ).scalars()
            )
            release_blobs(conn, self.ctx, account_id, gone)

    def list_objects(
        self,
        bucket_id: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        cursor: str = "",
        start_after: str = "",
        limit: int = LIST_LIMIT,
        include: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Keys in byte order; with a delimiter, the keys below each common prefix come back as
        that one prefix (each counts toward `limit`). The cursor is where the next page starts."""
        if not 1 <= limit <= LIST_LIMIT:
            raise ValidationError(f"limit must be between 1 and {LIST_LIMIT}.")
        position = decode_cursor(cursor) if cursor else ""
        lower, inclusive = (position[1:], position[0] == "=") if position else (start_after, False)
        objects: list[dict[str, Any]] = []
        prefixes: list[str] = []
        upper = prefix_successor(prefix) if prefix else None
        truncated = False
        with self.ctx.db.read() as conn:
            self._account_of(conn, bucket_id)
            while not truncated:
                query = select(r2_objects).where(r2_objects.c.bucket_id == bucket_id)
                if prefix and (not lower or lower < prefix):
                    lower, inclusive = prefix, True
                if lower:
                    column = r2_objects.c.key
                    query = query.where(column >= lower if inclusive else column > lower)
                if upper is not None:
                    query = query.where(r2_objects.c.key < upper)
                rows = conn.execute(query.order_by(r2_objects.c.key).limit(limit + 1)).all()
                if not rows:
                    break
                restart = False
                for row in rows:
                    if len(objects) + len(prefixes) == limit:
                        truncated = True
                        break
                    rest = row.key[len(prefix) :]
                    cut = rest.find(delimiter) if delimiter else -1
                    if cut >= 0:
                        common = prefix + rest[: cut + len(delimiter)]
                        prefixes.append(common)
                        successor = prefix_successor(common)
                        if successor is None:
                            return self._page(objects, prefixes, None)
                        lower, inclusive, restart = successor, True, True
                        break
                    objects.append(render(row, include=include))
                    lower, inclusive = row.key, False
                if not restart and not truncated and len(rows) <= limit:
                    break
        return self._page(
            objects, prefixes, ("=" if inclusive else ">") + lower if truncated else None
        )

    @staticmethod
    def _page(
        objects: list[dict[str, Any]], prefixes: list[str], position: str | None
    ) -> dict[str, Any]:
        page: dict[str, Any] = {
            "objects": objects,
            "delimitedPrefixes": prefixes,
            "truncated": position is not None,
        }
        if position is not None:
            page["cursor"] = encode_cursor(position)
        return page


def bucket_rows(conn: Connection, account_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(r2_buckets)
            .where(r2_buckets.c.account_id == account_id)
            .order_by(r2_buckets.c.name)
        ).all()
    )
