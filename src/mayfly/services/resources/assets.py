"""Workers Static Assets (spec wrangler-assets.md): upload sessions, deduplicated per account.

AS1 opens a session for a manifest and answers the hashes the account does not have yet, in
buckets; AS2/AS3 upload them with the session's upload token (a JWT); once nothing is missing, a
completion token lets a version upload attach the manifest. The hash is the client's opaque key:
never shared across accounts.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import jwt
from blake3 import blake3
from sqlalchemy import Connection, delete, insert, select, update

from mayfly.errors import InvalidToken, ValidationError
from mayfly.model import Account, AccountKind, Principal
from mayfly.services.context import ServiceContext
from mayfly.services.identity.tokens import require_usable_token
from mayfly.services.resources import quotas
from mayfly.services.resources.asset_rules import RuleWarning, parse_headers, parse_redirects
from mayfly.storage.tables import asset_files, asset_upload_sessions

log = logging.getLogger("mayfly.assets")

TOKEN_LIFETIME = timedelta(hours=1)
HASH_RE = re.compile(r"^[0-9a-f]{16,64}$")
BUCKET_FILES = 20
BUCKET_BYTES = 40 * 1024 * 1024
NULL_CONTENT_TYPE = "application/null"

HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("none", "404-page", "single-page-application")
CONFIG_KEYS = {
    "html_handling",
    "not_found_handling",
    "base_path",
    "run_worker_first",
    "_redirects",
    "_headers",
}


@dataclass(frozen=True)
class Limits:
    files: int
    file_bytes: int


LIMITS = {
    "temporary": Limits(files=1000, file_bytes=5 * 1024 * 1024),
    "permanent": Limits(files=20_000, file_bytes=25 * 1024 * 1024),
}


def check_manifest(manifest: Any, limits: Limits) -> dict[str, dict[str, Any]]:
    if not isinstance(manifest, dict):
        raise ValidationError('The upload session needs {"manifest": {"/path": {"hash", "size"}}}.')
    if len(manifest) > limits.files:
        raise ValidationError(
            f"The asset manifest has {len(manifest)} files; this account allows {limits.files}."
        )
    out: dict[str, dict[str, Any]] = {}
    for path, entry in manifest.items():
        if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
            raise ValidationError(f"Asset path {path!r} must start with '/'.")
        if not isinstance(entry, dict):
            raise ValidationError(f"Asset {path!r} needs a hash and a size.")
        digest, size = entry.get("hash"), entry.get("size")
        if not isinstance(digest, str) or not HASH_RE.match(digest):
            raise ValidationError(f"Asset {path!r} has an invalid hash {digest!r}.")
        if not isinstance(size, int) or size < 0:
            raise ValidationError(f"Asset {path!r} has an invalid size {size!r}.")
        if size > limits.file_bytes:
            raise ValidationError(
                f"Asset {path!r} is {size} bytes; this account allows {limits.file_bytes} per file."
            )
        out[path] = {"hash": digest, "size": size}
    return out


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z\d+.-]*:")
MAX_STARS_PER_RULE = 2  # the router's glob regexes backtrack: /*a*a*b on a long path takes seconds


def check_base_path(value: Any) -> None:
    """The asset-worker's own rules (normalizeBasePath): it refuses to serve anything else."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError("assets.config.base_path must be a path starting with '/'.")
    if value.startswith("//") or SCHEME.match(value):
        raise ValidationError("assets.config.base_path must be a pathname, not a URL.")
    for bad, what in (
        ("\\", "backslashes"),
        ("?", "query strings"),
        ("#", "fragments"),
        ("%", "percent-encoded sequences"),
    ):
        if bad in value:
            raise ValidationError(f"assets.config.base_path must not contain {what}.")
    if CONTROL_CHARACTER.search(value):
        raise ValidationError("assets.config.base_path must not contain control characters.")


def check_rules(rules: list[Any]) -> None:
    if len(rules) > 100:
        raise ValidationError("run_worker_first allows at most 100 rules.")
    if not all(isinstance(r, str) and len(r) < 100 and r.startswith(("/", "!/")) for r in rules):
        raise ValidationError(
            "run_worker_first rules are strings under 100 characters starting with '/' or '!/'."
        )
    if any(r.count("*") > MAX_STARS_PER_RULE for r in rules):
        raise ValidationError(
            f"run_worker_first rules may use '*' at most {MAX_STARS_PER_RULE} times each."
        )
    if not any(r.startswith("/") for r in rules):
        raise ValidationError("run_worker_first needs at least one non-negative rule.")


def check_config(
    config: Any, has_worker: bool, messages: list[str] | None = None
) -> dict[str, Any]:
    """Validate metadata.assets.config; the stored config adds the parsed _redirects/_headers
    rules (`redirects`, `headers`, the asset-worker's format). Lines skipped in those files become
    `messages` (the upload response's), or debug logs without a list."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValidationError("assets.config must be an object.")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValidationError(f"Unknown assets.config key(s): {', '.join(sorted(unknown))}.")
    if config.get("html_handling", "auto-trailing-slash") not in HTML_HANDLING:
        raise ValidationError(f"assets.config.html_handling must be one of {HTML_HANDLING}.")
    if config.get("not_found_handling", "none") not in NOT_FOUND_HANDLING:
        raise ValidationError(
            f"assets.config.not_found_handling must be one of {NOT_FOUND_HANDLING}."
        )
    check_base_path(config.get("base_path", "/"))
    first = config.get("run_worker_first", False)
    if isinstance(first, list):
        check_rules(first)
    elif not isinstance(first, bool):
        raise ValidationError("assets.config.run_worker_first must be true, false or a rule list.")
    if first and not has_worker:
        raise ValidationError("run_worker_first needs a Worker script (main_module).")
    for key in ("_redirects", "_headers"):
        if key in config and (not isinstance(config[key], str) or len(config[key]) > 200_000):
            raise ValidationError(f"assets.config.{key} must be the file's text (at most 200 kB).")
    out = dict(config)
    # As miniflare: a file in which nothing is valid adds no rules, and is no error.
    if "_redirects" in config:
        redirects, warnings = parse_redirects(config["_redirects"], config.get("html_handling"))
        if redirects is not None:
            out["redirects"] = redirects
        _report("_redirects", warnings, messages)
    if "_headers" in config:
        headers, warnings = parse_headers(config["_headers"])
        if headers is not None:
            out["headers"] = headers
        _report("_headers", warnings, messages)
    return out


MAX_RULE_MESSAGES = 20  # per file: a file of garbage should not make a huge upload response


def _report(filename: str, warnings: list[RuleWarning], messages: list[str] | None) -> None:
    lines = [f"Skipped in {w.render(filename)}" for w in warnings]
    for line in lines:
        log.debug("%s", line)
    if messages is None:
        return
    messages.extend(lines[:MAX_RULE_MESSAGES])
    if len(lines) > MAX_RULE_MESSAGES:
        messages.append(f"… and {len(lines) - MAX_RULE_MESSAGES} more in {filename}.")


def extension(path: str) -> str:
    """wrangler's: Node's path.extname without the dot ('' for '/.hidden' and '/README')."""
    return PurePosixPath(path).suffix[1:]


def content_matches(digest: str, data: bytes, extensions: set[str]) -> bool:
    """Whether `digest` is a hash of these bytes under one of the extensions its paths have:
    hex(H(base64(data) + extension)) truncated to the digest's length, H being BLAKE3 (wrangler)
    or SHA-256 (the example client of Cloudflare's direct-upload guide)."""
    encoded = base64.b64encode(data)
    for ext in extensions:
        text = encoded + ext.encode()
        for hashed in (blake3(text).hexdigest(), hashlib.sha256(text).hexdigest()):
            if hashed[: len(digest)] == digest:
                return True
    return False


def verify_contents(
    manifest: dict[str, dict[str, Any]], files: list[tuple[str, bytes, str | None]]
) -> None:
    """Every file is in the manifest, of the announced size, and its bytes hash to its key
    (10021 otherwise, before anything is stored)."""
    sizes: dict[str, int] = {}
    extensions: dict[str, set[str]] = {}
    wanted = {digest for digest, _, _ in files}
    for path, entry in manifest.items():
        sizes[entry["hash"]] = entry["size"]
        if entry["hash"] in wanted:  # not every path of the manifest at every bucket
            extensions.setdefault(entry["hash"], set()).add(extension(path))
    for digest, data, _ in files:
        if digest not in sizes:
            raise ValidationError(f"Asset {digest} is not in this upload session's manifest.")
        if len(data) != sizes[digest]:
            raise ValidationError(
                f"Asset {digest} is {len(data)} bytes; the manifest said {sizes[digest]}."
            )
        if not content_matches(digest, data, extensions[digest]):
            raise ValidationError(
                f"Asset {digest}: the uploaded bytes do not match this hash (expected "
                "hex(BLAKE3(base64(content) + extension)) as wrangler computes it, or the same "
                "with SHA-256, truncated to the hash's length)."
            )


def buckets_for(missing: list[tuple[str, int]]) -> list[list[str]]:
    """Largest first, at most 20 files or 40 MiB a bucket (one upload request each)."""
    buckets: list[list[str]] = []
    current: list[str] = []
    size = 0
    for digest, length in sorted(missing, key=lambda item: -item[1]):
        if current and (len(current) >= BUCKET_FILES or size + length > BUCKET_BYTES):
            buckets.append(current)
            current, size = [], 0
        current.append(digest)
        size += length
    if current:
        buckets.append(current)
    return buckets


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
        quotas.require_count(
            kind,
            "static asset files",
            quotas.count_asset_files(conn, account_id),
            len(new_sizes),
            quotas.quota_for(self.ctx.settings, kind).asset_files,
            "Files stay while a version or an upload session (one hour) uses them; delete "
            "Workers you no longer need (`wrangler delete`), or deploy fewer files.",
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


class InvalidAssetToken(InvalidToken):
    """Not 10000 (wrangler runs its auth-error handler on that): the message says what to do."""

    code, status = 10020, 401


class AssetNotFound(ValidationError):
    code, status = 10404, 404
