"""R2 objects as Cloudflare shapes them: names, HTTP and custom metadata, checksums, conditional
requests (onlyIf) and ranges. Pure functions: nothing here touches storage."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mayfly.errors import ChecksumMismatch, InvalidBucketName, RangeNotSatisfiable, ValidationError

BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024
MAX_CUSTOM_METADATA_BYTES = 2048
HTTP_FIELDS = (
    "contentType",
    "contentLanguage",
    "contentDisposition",
    "contentEncoding",
    "cacheControl",
    "cacheExpiry",
)
# The HTTP headers wrangler and the S3-style API send, and the field each fills.
HEADER_FIELDS = {
    "content-type": "contentType",
    "content-language": "contentLanguage",
    "content-disposition": "contentDisposition",
    "content-encoding": "contentEncoding",
    "cache-control": "cacheControl",
    "expires": "cacheExpiry",
}
CHECKSUMS = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
STORAGE_CLASSES = ("Standard", "InfrequentAccess")


def check_bucket_name(name: Any) -> str:
    if not isinstance(name, str) or not BUCKET_NAME_RE.match(name):
        raise InvalidBucketName(
            f"The bucket name {name!r} is not valid: 3-63 characters, lowercase letters, digits "
            "and hyphens, starting and ending with a letter or digit."
        )
    return name


def check_key(key: str) -> str:
    if not key:
        raise ValidationError("An R2 object key must not be empty.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValidationError(f"R2 object keys are at most {MAX_KEY_BYTES} bytes.")
    return key


def _optional_object(value: Any, what: str) -> dict[Any, Any]:
    """`value` as given where an object may be left out: {} when it is (None or ""), 400 when it
    is something else than an object."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be an object.")
    return value


def http_metadata(value: Any) -> dict[str, str]:
    """The object's HTTP metadata: strings only, of the known fields (cacheExpiry as ISO)."""
    out: dict[str, str] = {}
    for name, item in _optional_object(value, "httpMetadata").items():
        if name not in HTTP_FIELDS:
            raise ValidationError(f"httpMetadata has an unknown field {name!r}.")
        if item is None:
            continue
        if not isinstance(item, str) or len(item) > 1024:
            raise ValidationError(f"httpMetadata.{name} must be a string of at most 1024 bytes.")
        out[name] = item
    if "cacheExpiry" in out:
        out["cacheExpiry"] = iso(parse_time(out["cacheExpiry"], "httpMetadata.cacheExpiry"))
    return out


def custom_metadata(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError("customMetadata must be an object of strings.")
    if len(json.dumps(value).encode()) > MAX_CUSTOM_METADATA_BYTES:
        raise ValidationError(f"customMetadata is at most {MAX_CUSTOM_METADATA_BYTES} bytes.")
    return dict(value)


def parse_time(value: Any, what: str) -> datetime:
    """An ISO date, or milliseconds since the epoch."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise ValidationError(f"{what} must be a date.")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Digests:
    md5: str
    sha256: str
    others: dict[str, str]


def digests(data: bytes, wanted: dict[str, str]) -> Digests:
    """MD5 (always: the etag) and SHA-256 (the blob's address), plus any checksum the writer gave,
    each checked against what it gave (hex)."""
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    computed = {"md5": md5, "sha256": sha256}
    others: dict[str, str] = {}
    for name, expected in wanted.items():
        actual = computed.get(name) or hashlib.new(name, data).hexdigest()
        if actual != expected:
            raise ChecksumMismatch(
                f"The {name.upper()} checksum you specified did not match what we received."
            )
        if name != "md5":
            others[name] = actual
    return Digests(md5, sha256, others)


def expected_checksums(value: Any) -> dict[str, str]:
    """{algorithm: hex} from the binding (hex strings) or headers; at most one SHA."""
    out: dict[str, str] = {}
    for name, given in _optional_object(value, "checksums").items():
        if name not in CHECKSUMS:
            raise ValidationError(f"Unknown checksum {name!r} (md5, sha1, sha256, sha384, sha512).")
        if not isinstance(given, str):
            raise ValidationError(f"The {name} checksum must be a hex string.")
        hexed = given.lower()
        if not re.fullmatch(r"[0-9a-f]*", hexed) or len(hexed) != 2 * CHECKSUMS[name]:
            try:
                raw = base64.b64decode(given, validate=True)
            except ValueError as exc:
                raise ValidationError(f"The {name} checksum is neither hex nor base64.") from exc
            if len(raw) != CHECKSUMS[name]:
                raise ValidationError(f"The {name} checksum must be {CHECKSUMS[name]} bytes.")
            hexed = raw.hex()
        out[name] = hexed
    if len([n for n in out if n != "md5"]) > 1:
        raise ValidationError("Give at most one SHA checksum with an object.")
    return out


def multipart_etag(part_md5s: list[str]) -> str:
    joined = b"".join(bytes.fromhex(m) for m in part_md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_md5s)}"


def _etags(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(v).strip().removeprefix("W/").strip('"') for v in items if str(v).strip()]


def _etag_listed(etag: str | None, value: Any) -> bool:
    """Whether the object's etag (None: there is no object) is among the ETags `value` lists, or
    the list has `*`."""
    wanted = _etags(value)
    return etag is not None and ("*" in wanted or etag in wanted)


def conditions_met(only_if: Any, etag: str | None, uploaded: datetime | None) -> bool:
    """Cloudflare's onlyIf (R2Conditional, from the binding as JSON): etagMatches,
    etagDoesNotMatch, uploadedBefore, uploadedAfter. An etag condition takes precedence over
    the date condition of the same sense (RFC 9110 §13.2.2); no object matches no etag."""
    if not only_if:
        return True
    if not isinstance(only_if, dict):
        raise ValidationError("onlyIf must be an object.")
    seconds = bool(only_if.get("secondsGranularity"))

    def when(name: str) -> datetime | None:
        value = only_if.get(name)
        if value is None:
            return None
        moment = parse_time(value, f"onlyIf.{name}")
        return moment.replace(microsecond=0) if seconds else moment

    stamp = uploaded.replace(microsecond=0) if (uploaded and seconds) else uploaded
    matches = only_if.get("etagMatches")
    before = when("uploadedBefore")
    if matches is not None:
        if not _etag_listed(etag, matches):
            return False
    elif before is not None and (stamp is None or stamp >= before):
        return False
    not_matches = only_if.get("etagDoesNotMatch")
    after = when("uploadedAfter")
    if not_matches is not None:
        if _etag_listed(etag, not_matches):
            return False
    elif after is not None and stamp is not None and stamp <= after:
        return False
    return True


def resolve_range(spec: Any, size: int) -> tuple[int, int] | None:
    """(offset, length) of an R2Range ({offset, length} | {offset} | {suffix}), or None for all."""
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ValidationError("range must be an object with offset/length or suffix.")

    def number(name: str) -> int | None:
        value = spec.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(f"range.{name} must be a whole number of bytes.")
        return value

    suffix = number("suffix")
    if suffix is not None:
        tail = min(suffix, size)
        return size - tail, tail
    offset = number("offset") or 0
    wanted = number("length")
    if offset > size or (offset == size and size > 0):
        raise RangeNotSatisfiable(f"The requested range is not satisfiable (object of {size}).")
    available = size - offset
    return offset, available if wanted is None else min(wanted, available)


def range_header(value: str | None) -> dict[str, int] | None:
    """`Range: bytes=a-b` / `bytes=a-` / `bytes=-n` as an R2Range."""
    if not value:
        return None
    found = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if not found or (found.group(1) == "" and found.group(2) == ""):
        raise ValidationError("Range must be bytes=a-b, bytes=a- or bytes=-n.")
    start, end = found.group(1), found.group(2)
    if start == "":
        return {"suffix": int(end)}
    if end == "":
        return {"offset": int(start)}
    if int(end) < int(start):
        raise RangeNotSatisfiable("The requested range is not satisfiable.")
    return {"offset": int(start), "length": int(end) - int(start) + 1}


def render(
    row: Any, *, include: tuple[str, ...] = ("httpMetadata", "customMetadata")
) -> dict[str, Any]:
    """An R2Object as the binding rebuilds it (dates as ISO)."""
    checksums = {"md5": row.etag} if "-" not in row.etag else {}
    checksums.update(row.checksums or {})
    return {
        "key": row.key,
        "version": row.version,
        "size": int(row.size),
        "etag": row.etag,
        "httpEtag": f'"{row.etag}"',
        "uploaded": iso(row.uploaded if row.uploaded.tzinfo else row.uploaded.replace(tzinfo=UTC)),
        "httpMetadata": dict(row.http_metadata or {}) if "httpMetadata" in include else {},
        "customMetadata": dict(row.custom_metadata or {}) if "customMetadata" in include else {},
        "checksums": checksums,
        "storageClass": "Standard",
    }
