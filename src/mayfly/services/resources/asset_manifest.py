"""An assets manifest checked against the account's limits, uploaded bytes checked against their
hashes, and the missing files grouped into upload buckets."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from blake3 import blake3

from mayfly.errors import ValidationError

HASH_RE = re.compile(r"^[0-9a-f]{16,64}$")
BUCKET_FILES = 20
BUCKET_BYTES = 40 * 1024 * 1024


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
