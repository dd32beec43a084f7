"""Versions: immutable, stored completely in one transaction; and how they are rendered."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from mayfly.errors import ValidationError
from mayfly.model import iso
from mayfly.services.core.crypto import Crypto
from mayfly.services.workers.handlers import detect_handlers
from mayfly.services.workers.uploads import Module, UploadPlan, check_env_var_count
from mayfly.storage.blobs import BlobStore
from mayfly.storage.resource_tables import d1_databases, r2_buckets
from mayfly.storage.tables import kv_namespaces, modules, scripts, versions


@dataclass(frozen=True)
class PreparedCode:
    """What an upload computes before its write transaction: the handlers (the main module parsed
    by handlers.py) and each module's blob digest (hashed, and written when blobs are files)."""

    handlers: list[str]
    digests: list[str]  # in the order of plan.modules


def prepare_code(blobs: BlobStore, account_id: str, plan: UploadPlan) -> PreparedCode:
    main = next((m for m in plan.modules if m.name == plan.main_module), None)
    return PreparedCode(
        handlers=detect_handlers(main.data) if main is not None else [],
        digests=[blobs.stage(account_id, m.data) for m in plan.modules],
    )


def resolve_bindings(
    conn: Connection,
    crypto: Crypto,
    account_id: str,
    plan: UploadPlan,
    previous: list[dict[str, Any]] | None,
    strict_inherit: bool,
    has_assets: bool = False,
) -> list[dict[str, Any]]:
    """The bindings to store: inherit resolved, kept secrets copied, secrets encrypted."""
    previous_by_name = {b["name"]: b for b in previous or []}
    out: list[dict[str, Any]] = []
    for binding in plan.bindings:
        if binding["type"] == "inherit":
            old = previous_by_name.get(binding["name"])
            if old is None:
                if strict_inherit:
                    raise ValidationError(
                        f"Binding {binding['name']!r} is marked inherit, but the previous version "
                        "has no binding of that name."
                    )
                continue
            out.append(old)
            continue
        if binding["type"] == "assets" and not has_assets:
            raise ValidationError(
                f"Binding {binding['name']!r} (assets) needs metadata.assets in the same upload."
            )
        if binding["type"] == "secret_text":
            out.append(
                {
                    "name": binding["name"],
                    "type": "secret_text",
                    "ciphertext": crypto.encrypt(binding["text"]),
                }
            )
            continue
        if binding["type"] == "kv_namespace":
            owned = conn.execute(
                select(kv_namespaces.c.id).where(
                    kv_namespaces.c.id == binding["namespace_id"],
                    kv_namespaces.c.account_id == account_id,
                )
            ).first()
            if owned is None:
                raise ValidationError(
                    f"Binding {binding['name']!r}: KV namespace {binding['namespace_id']!r} "
                    "does not exist in this account."
                )
            out.append(
                {
                    "name": binding["name"],
                    "type": "kv_namespace",
                    "namespace_id": binding["namespace_id"],
                }
            )
            continue
        if binding["type"] == "d1":
            owned = conn.execute(
                select(d1_databases.c.id).where(
                    d1_databases.c.id == binding["id"], d1_databases.c.account_id == account_id
                )
            ).first()
            if owned is None:
                raise ValidationError(
                    f"Binding {binding['name']!r}: D1 database {binding['id']!r} does not exist "
                    "in this account (create it with `wrangler d1 create`)."
                )
            out.append({"name": binding["name"], "type": "d1", "id": binding["id"]})
            continue
        if binding["type"] in ("r2_bucket", "service"):
            out.append(_owned_target(conn, account_id, binding))
            continue
        out.append({k: v for k, v in binding.items()})
    names = {b["name"] for b in out}
    for old in previous or []:
        if old["type"] in plan.keep_bindings and old["name"] not in names:
            out.append(old)
    check_env_var_count(out)  # kept secrets count too
    return out


def _owned_target(conn: Connection, account_id: str, binding: dict[str, Any]) -> dict[str, Any]:
    """An R2 or service binding with the id of what it names in this account (a bucket, a
    Worker): the data plane follows the id, so a claim's renames do not break it, and nothing of
    another account can be named. A Worker may bind itself (its row exists by now)."""
    name = binding["name"]
    if binding["type"] == "r2_bucket":
        bucket = conn.execute(
            select(r2_buckets.c.id).where(
                r2_buckets.c.account_id == account_id,
                r2_buckets.c.name == binding["bucket_name"],
            )
        ).scalar_one_or_none()
        if bucket is None:
            raise ValidationError(
                f"Binding {name!r}: R2 bucket {binding['bucket_name']!r} does not exist in this "
                "account (create it with `wrangler r2 bucket create`)."
            )
        return {
            "name": name,
            "type": "r2_bucket",
            "bucket_name": binding["bucket_name"],
            "bucket_id": bucket,
        }
    script = conn.execute(
        select(scripts.c.id).where(
            scripts.c.account_id == account_id, scripts.c.name == binding["service"]
        )
    ).scalar_one_or_none()
    if script is None:
        raise ValidationError(
            f"Binding {name!r}: service {binding['service']!r} is not a Worker of this account; "
            "a service binding names a Worker deployed in the same account (deploy it first)."
        )
    stored = {"name": name, "type": "service", "service": binding["service"], "script_id": script}
    if binding.get("entrypoint"):
        stored["entrypoint"] = binding["entrypoint"]
    return stored


def public_binding(binding: dict[str, Any]) -> dict[str, Any]:
    """How a stored binding is shown through the API: never a secret's value."""
    if binding["type"] == "secret_text":
        return {"name": binding["name"], "type": "secret_text"}
    return dict(binding)


def insert_version(conn: Connection, *, script_id: str, **values: Any) -> str:
    """Insert a version row with a new id and the script's next number; returns the id."""
    version_id = str(uuid.uuid4())
    number = (
        conn.execute(
            select(func.max(versions.c.number)).where(versions.c.script_id == script_id)
        ).scalar_one_or_none()
        or 0
    ) + 1
    conn.execute(
        insert(versions).values(id=version_id, script_id=script_id, number=number, **values)
    )
    return version_id


def copy_version(
    conn: Connection,
    current: Any,
    bindings: list[dict[str, Any]],
    annotations: dict[str, str],
    now: datetime,
    author: str | None = None,
) -> str:
    """A new version with the same code (the same module blobs) and other bindings."""
    version_id = insert_version(
        conn,
        script_id=current.script_id,
        account_id=current.account_id,
        created_at=now,
        main_module=current.main_module,
        compatibility_date=current.compatibility_date,
        compatibility_flags=current.compatibility_flags,
        bindings=bindings,
        annotations=annotations,
        source=current.source,
        size=current.size,
        assets=current.assets,
        handlers=current.handlers,
        author=author if author is not None else current.author,
    )
    for module in conn.execute(select(modules).where(modules.c.version_id == current.id)).all():
        conn.execute(
            insert(modules).values(
                version_id=version_id,
                name=module.name,
                kind=module.kind,
                blob_sha256=module.blob_sha256,
                size=module.size,
            )
        )
    return version_id


def store_version(
    conn: Connection,
    blobs: BlobStore,
    *,
    account_id: str,
    script_id: str,
    plan: UploadPlan,
    bindings: list[dict[str, Any]],
    source: str,
    now: datetime,
    prepared: PreparedCode,
    author: str,
    assets: dict[str, Any] | None = None,
) -> str:
    version_id = insert_version(
        conn,
        script_id=script_id,
        account_id=account_id,
        created_at=now,
        main_module=plan.main_module,
        compatibility_date=plan.compatibility_date,
        compatibility_flags=plan.compatibility_flags,
        bindings=bindings,
        annotations=plan.annotations,
        source=source,
        size=plan.size,
        assets=assets,
        handlers=prepared.handlers,
        author=author,
    )
    for module, digest in zip(plan.modules, prepared.digests, strict=True):
        blobs.put(conn, account_id, module.data, digest)
        conn.execute(
            insert(modules).values(
                version_id=version_id,
                name=module.name,
                kind=module.kind,
                blob_sha256=digest,
                size=len(module.data),
            )
        )
    return version_id


def load_modules(
    conn: Connection, blobs: BlobStore, account_id: str, version_id: str
) -> list[Module]:
    rows = conn.execute(
        select(modules).where(modules.c.version_id == version_id).order_by(modules.c.name)
    ).all()
    return [Module(r.name, r.kind, blobs.get(conn, account_id, r.blob_sha256)) for r in rows]


def render_version(row: Any, handlers: list[str], author: str) -> dict[str, Any]:
    annotations = dict(row.annotations or {})
    return {
        "id": row.id,
        "number": row.number,
        "metadata": {
            "created_on": iso(row.created_at),
            "modified_on": iso(row.created_at),
            "source": row.source,
            "author_email": author,
            "hasPreview": False,
        },
        "annotations": annotations,
        "resources": {
            "script": {
                "etag": row.id.replace("-", ""),
                "handlers": handlers,
                "last_deployed_from": "wrangler",
            },
            "script_runtime": {
                "compatibility_date": row.compatibility_date,
                "compatibility_flags": list(row.compatibility_flags or []),
                "usage_model": "standard",
            },
            "bindings": [public_binding(b) for b in row.bindings or []],
        },
    }


def module_payload(module: Module) -> dict[str, Any]:
    """A module as the data plane receives it (text modules as text, others base64)."""
    if module.kind in ("esm", "cjs", "text", "json", "sourcemap"):
        return {"name": module.name, "kind": module.kind, "text": module.data.decode("utf-8")}
    return {
        "name": module.name,
        "kind": module.kind,
        "base64": base64.b64encode(module.data).decode(),
    }
