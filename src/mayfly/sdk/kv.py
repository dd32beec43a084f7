"""Workers KV: namespaces and values (spec §1: K1–K7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mayfly.sdk.errors import MayflyAPIError
from mayfly.sdk.worker_models import KVKey, KVNamespaceInfo

if TYPE_CHECKING:
    from mayfly.sdk.client import MayflyClient

MALFORMED = 0
PAGE_SIZE = 100


class KVAPI:
    def __init__(self, client: MayflyClient) -> None:
        self.client = client

    def _namespaces(self, account_id: str) -> str:
        return f"/accounts/{account_id}/storage/kv/namespaces"

    def _value(self, account_id: str, namespace_id: str, key: str) -> str:
        # The key is one path segment: `/` and everything else percent-encoded (spec §3.5).
        return f"{self._namespaces(account_id)}/{namespace_id}/values/{quote(key, safe='')}"

    # -- namespaces -----------------------------------------------------------------------------

    def create_namespace(self, account_id: str, title: str) -> KVNamespaceInfo:
        """K1 (10014 when the title is taken)."""
        result = self.client.call("POST", self._namespaces(account_id), json={"title": title})
        return _namespace(result, title)

    def list_namespaces(self, account_id: str) -> list[KVNamespaceInfo]:
        """K3: every namespace, by title (pages of 100 until a short one)."""
        found: list[KVNamespaceInfo] = []
        page = 1
        while True:
            items = self.client.call(
                "GET",
                self._namespaces(account_id),
                params={"per_page": PAGE_SIZE, "order": "title", "direction": "asc", "page": page},
            )
            if not isinstance(items, list):
                raise MayflyAPIError(MALFORMED, "The namespace list is not a list.", 200)
            found.extend(_namespace(item) for item in items)
            if len(items) < PAGE_SIZE:
                return found
            page += 1

    def find_namespace(self, account_id: str, title: str) -> KVNamespaceInfo | None:
        return next((n for n in self.list_namespaces(account_id) if n.title == title), None)

    def delete_namespace(self, account_id: str, namespace_id: str) -> None:
        self.client.call("DELETE", f"{self._namespaces(account_id)}/{namespace_id}")

    # -- values ---------------------------------------------------------------------------------

    def put(
        self,
        account_id: str,
        namespace_id: str,
        key: str,
        value: bytes,
        *,
        metadata: Any = None,
        expiration: int | None = None,
        expiration_ttl: int | None = None,
    ) -> None:
        """K4: raw body, or multipart `value` + `metadata` when there is metadata."""
        params: dict[str, int] = {}
        if expiration is not None:
            params["expiration"] = expiration
        if expiration_ttl is not None:
            params["expiration_ttl"] = expiration_ttl
        path = self._value(account_id, namespace_id, key)
        if metadata is None:
            self.client.call(
                "PUT",
                path,
                params=params,
                content=value,
                headers={"content-type": "application/octet-stream"},
            )
            return
        files = {
            # A filename makes the value a file part, so binary values arrive unchanged.
            "value": ("value", value, "application/octet-stream"),
            "metadata": (None, json.dumps(metadata).encode(), "application/json"),
        }
        self.client.call("PUT", path, params=params, files=files)

    def get(self, account_id: str, namespace_id: str, key: str) -> bytes:
        """K5: the value's bytes (the one answer that is not an envelope)."""
        return self.client.raw("GET", self._value(account_id, namespace_id, key)).content

    def delete(self, account_id: str, namespace_id: str, key: str) -> None:
        """K7."""
        self.client.call("DELETE", self._value(account_id, namespace_id, key))

    def keys(self, account_id: str, namespace_id: str, prefix: str = "") -> Iterator[KVKey]:
        """K6: every key with `prefix`, following the cursor from page to page."""
        cursor = ""
        path = f"{self._namespaces(account_id)}/{namespace_id}/keys"
        while True:
            params = {"prefix": prefix, **({"cursor": cursor} if cursor else {})}
            body = self.client.envelope("GET", path, params=params)
            items = body.get("result")
            if not isinstance(items, list):
                raise MayflyAPIError(MALFORMED, "The key list is not a list.", 200)
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    expiration = item.get("expiration")
                    yield KVKey(
                        item["name"],
                        expiration if isinstance(expiration, int) else None,
                        item.get("metadata"),
                    )
            info = body.get("result_info")
            next_cursor = info.get("cursor") if isinstance(info, dict) else None
            if not isinstance(next_cursor, str) or not next_cursor or not items:
                return
            cursor = next_cursor


def _namespace(raw: Any, title: str | None = None) -> KVNamespaceInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise MayflyAPIError(MALFORMED, "A KV namespace in the API's answer has no id.", 200)
    return KVNamespaceInfo(raw["id"], str(raw.get("title") or title or ""))
