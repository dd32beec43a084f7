"""The MCP KV tools: read, write and list a namespace, named or found through a Worker's binding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mayfly.mcp.core import KEY_NOT_FOUND, BackendCore, ToolFailure
from mayfly.sdk import (
    AccountInfo,
    Listener,
    MayflyAPIError,
    MayflyClient,
)


@dataclass(frozen=True)
class NamespaceRef:
    """Which namespace a KV tool acts on: `namespace_id`, else a KV binding (`binding`, or the
    only one) of the Worker `name` (default: the last one deployed)."""

    namespace_id: str | None = None
    binding: str | None = None
    name: str | None = None


class KvTools(BackendCore):
    def namespace(self, authed: MayflyClient, account: AccountInfo, ref: NamespaceRef) -> str:
        """The id of the namespace `ref` names."""
        if ref.namespace_id:
            return ref.namespace_id
        script = self.worker(authed, account, ref.name)
        settings = authed.workers.settings(account.id, script)
        bound = {
            str(b["name"]): str(b["namespace_id"])
            for b in settings.get("bindings") or []
            if isinstance(b, dict) and b.get("type") == "kv_namespace" and "namespace_id" in b
        }
        if ref.binding is not None and ref.binding in bound:
            return bound[ref.binding]
        if ref.binding is None and len(bound) == 1:
            return next(iter(bound.values()))
        names = ", ".join(sorted(bound)) or "none"
        raise ToolFailure(
            f"Which KV namespace? Pass `namespace_id`, or `binding` (the KV bindings of {script}: "
            f"{names}).",
            code="namespace_required",
        )

    def in_namespace(
        self,
        listener: Listener,
        ref: NamespaceRef,
        work: Callable[[MayflyClient, AccountInfo, str], dict[str, Any]],
    ) -> dict[str, Any]:
        """`work(authed, account, namespace id)` in the account, on the namespace `ref` names."""
        return self.run(
            lambda authed, account: work(authed, account, self.namespace(authed, account, ref)),
            listener,
        ).value

    def kv_get(self, listener: Listener, *, key: str, ref: NamespaceRef) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo, namespace: str) -> dict[str, Any]:
            try:
                data = authed.kv.get(account.id, namespace, key)
            except MayflyAPIError as exc:
                if exc.code != KEY_NOT_FOUND:
                    raise
                return {"namespace_id": namespace, "key": key, "found": False, "value": None}
            try:
                value = data.decode()
            except UnicodeDecodeError:
                raise ToolFailure(
                    f"The value of {key!r} is binary ({len(data)} bytes), not UTF-8 text.",
                    code="binary_value",
                ) from None
            return {"namespace_id": namespace, "key": key, "found": True, "value": value}

        return self.in_namespace(listener, ref, action)

    def kv_put(
        self,
        listener: Listener,
        *,
        key: str,
        value: str,
        ref: NamespaceRef,
        expiration_ttl: int | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo, namespace: str) -> dict[str, Any]:
            authed.kv.put(account.id, namespace, key, value.encode(), expiration_ttl=expiration_ttl)
            return {"namespace_id": namespace, "key": key, "written": True}

        return self.in_namespace(listener, ref, action)

    def kv_list(
        self, listener: Listener, *, prefix: str, limit: int, ref: NamespaceRef
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo, namespace: str) -> dict[str, Any]:
            keys: list[dict[str, Any]] = []
            complete = True
            for found in authed.kv.keys(account.id, namespace, prefix):
                if len(keys) >= limit:
                    complete = False
                    break
                keys.append({"name": found.name, "expiration": found.expiration})
            return {"namespace_id": namespace, "keys": keys, "complete": complete}

        return self.in_namespace(listener, ref, action)
