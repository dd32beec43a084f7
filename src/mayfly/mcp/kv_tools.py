"""The MCP KV tools: read, write and list a namespace, named or found through a Worker's binding."""

from __future__ import annotations

from typing import Any

from mayfly.mcp.core import KEY_NOT_FOUND, BackendCore, ToolFailure
from mayfly.sdk import (
    AccountInfo,
    Listener,
    MayflyAPIError,
    MayflyClient,
)


class KvTools(BackendCore):
    def namespace(
        self,
        authed: MayflyClient,
        account: AccountInfo,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> str:
        """`namespace_id`, else the Worker's KV binding (`binding`, or its only one)."""
        if namespace_id:
            return namespace_id
        script = self.worker(authed, account, name)
        settings = authed.workers.settings(account.id, script)
        bound = {
            str(b["name"]): str(b["namespace_id"])
            for b in settings.get("bindings") or []
            if isinstance(b, dict) and b.get("type") == "kv_namespace" and "namespace_id" in b
        }
        if binding is not None and binding in bound:
            return bound[binding]
        if binding is None and len(bound) == 1:
            return next(iter(bound.values()))
        names = ", ".join(sorted(bound)) or "none"
        raise ToolFailure(
            f"Which KV namespace? Pass `namespace_id`, or `binding` (the KV bindings of {script}: "
            f"{names}).",
            code="namespace_required",
        )

    def kv_get(
        self,
        listener: Listener,
        *,
        key: str,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
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

        return self.run(action, listener).value

    def kv_put(
        self,
        listener: Listener,
        *,
        key: str,
        value: str,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
        expiration_ttl: int | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
            authed.kv.put(account.id, namespace, key, value.encode(), expiration_ttl=expiration_ttl)
            return {"namespace_id": namespace, "key": key, "written": True}

        return self.run(action, listener).value

    def kv_list(
        self,
        listener: Listener,
        *,
        prefix: str,
        limit: int,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
            keys: list[dict[str, Any]] = []
            complete = True
            for found in authed.kv.keys(account.id, namespace, prefix):
                if len(keys) >= limit:
                    complete = False
                    break
                keys.append({"name": found.name, "expiration": found.expiration})
            return {"namespace_id": namespace, "keys": keys, "complete": complete}

        return self.run(action, listener).value
