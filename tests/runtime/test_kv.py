"""KV bindings in real workerd shards against the real control plane: what a tenant writes the API
reads and the other way round, with Cloudflare's methods, types, metadata, expiry and listing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

# A tenant that runs one KV call per request: POST {op, args, binding?} → {value} or {error}.
# Values that JSON cannot carry come back tagged: {bytes: base64}, {stream: text}, {map: entries}.
DRIVER = """
const b64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)));
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

function argument(value) {
  if (value === null || typeof value !== "object") return value;
  if ("bytes" in value) return bytes(value.bytes).buffer;
  if ("view" in value) {
    // A view into the middle of a larger buffer: only the viewed bytes are the value.
    const inner = bytes(value.view);
    const outer = new Uint8Array(inner.length + 4);
    outer.set(inner, 2);
    return new DataView(outer.buffer, 2, inner.length);
  }
  if ("stream" in value) {
    const chunks = value.stream.map((chunk) => new TextEncoder().encode(chunk));
    return new ReadableStream({
      pull(controller) {
        if (chunks.length) controller.enqueue(chunks.shift());
        else controller.close();
      },
    });
  }
  return value;
}

async function shown(value) {
  if (value instanceof ArrayBuffer) return { bytes: b64(value) };
  if (value instanceof ReadableStream) return { stream: await new Response(value).text() };
  if (value instanceof Map) {
    const entries = [];
    for (const [k, v] of value) entries.push([k, await shown(v)]);
    return { map: entries };
  }
  if (value && typeof value === "object" && "value" in value && "metadata" in value) {
    return { ...value, value: await shown(value.value) };
  }
  return value;
}

export default {
  async fetch(request, env) {
    const { op, args = [], binding = "KV" } = await request.json();
    try {
      const kv = env[binding];
      const value = await kv[op](...args.map(argument));
      return Response.json({ value: (await shown(value)) ?? null });
    } catch (err) {
      return Response.json({ error: String(err), name: err.name });
    }
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("kv")))
    yield live
    live.close()


class Tenant:
    """An account with a KV namespace and the driver Worker bound to it as env.KV."""

    def __init__(self, live: LivePlatform, script: str = "kv"):
        self.live = live
        self.account = live.provision()
        self.headers = auth(self.account["apiToken"])
        self.ns = self.create_namespace("store")
        live.deploy(
            self.account,
            script,
            DRIVER,
            bindings=[{"type": "kv_namespace", "name": "KV", "namespace_id": self.ns}],
        )
        self.host = live.host(self.account, script)

    def create_namespace(self, title: str) -> str:
        response = self.live.api.post(
            f"accounts/{self.account['id']}/storage/kv/namespaces",
            headers=self.headers,
            json={"title": title},
        )
        assert response.status_code == 200, response.text
        namespace_id: str = response.json()["result"]["id"]
        return namespace_id

    def call(self, op: str, *args: Any) -> Any:
        """The tenant's `await env.KV[op](...args)`; raises AssertionError with what it threw."""
        answer = self.answer(op, *args)
        assert "error" not in answer, answer
        return answer["value"]

    def answer(self, op: str, *args: Any) -> dict[str, Any]:
        with httpx.Client(timeout=30) as client:
            response = client.post(
                f"http://127.0.0.1:{self.live.port}/",
                headers={"host": self.host},
                content=json.dumps({"op": op, "args": list(args)}),
            )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    # the public API (wrangler's view)

    def path(self, what: str, key: str = "") -> str:
        base = f"accounts/{self.account['id']}/storage/kv/namespaces/{self.ns}/{what}"
        return base + (quote(key, safe="") if key else "")

    def api_put(self, key: str, value: bytes, metadata: Any = None, **params: Any) -> None:
        if metadata is None:
            response = self.live.api.put(
                self.path("values/", key), headers=self.headers, content=value, params=params
            )
        else:
            response = self.live.api.put(
                self.path("values/", key),
                headers=self.headers,
                files={"value": (None, value), "metadata": (None, json.dumps(metadata))},
                params=params,
            )
        assert response.status_code == 200, response.text

    def api_get(self, key: str) -> httpx.Response:
        return self.live.api.get(self.path("values/", key), headers=self.headers)

    def api_metadata(self, key: str) -> Any:
        response = self.live.api.get(self.path("metadata/", key), headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def api_keys(self, prefix: str = "") -> list[dict[str, Any]]:
        response = self.live.api.get(
            self.path("keys"), headers=self.headers, params={"prefix": prefix}
        )
        assert response.status_code == 200, response.text
        keys: list[dict[str, Any]] = response.json()["result"]
        return keys


@pytest.fixture(scope="module")
def tenant(live: LivePlatform) -> Tenant:
    return Tenant(live)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


KEYS = ["plain", "dir/a b?c#d%e", "x&key=other&ns=1", "+plus+", "ключ/ü", "../../escape"]


@pytest.mark.parametrize("key", KEYS)
def test_the_tenant_reads_what_the_api_wrote(tenant: Tenant, key: str) -> None:
    tenant.api_put(key, json.dumps({"n": 1, "key": key}).encode(), metadata={"by": "api"})
    expected = {"n": 1, "key": key}
    assert tenant.call("get", key) == json.dumps(expected)
    assert tenant.call("get", key, "text") == json.dumps(expected)
    assert tenant.call("get", key, {"type": "json"}) == expected
    raw = json.dumps(expected).encode()
    assert tenant.call("get", key, "arrayBuffer") == {"bytes": b64(raw)}
    assert tenant.call("get", key, {"type": "stream"}) == {"stream": raw.decode()}
    assert tenant.call("getWithMetadata", key, "json") == {
        "value": expected,
        "metadata": {"by": "api"},
        "cacheStatus": None,
    }


@pytest.mark.parametrize("key", KEYS)
def test_the_api_reads_what_the_tenant_wrote(tenant: Tenant, key: str) -> None:
    metadata = {"by": "tenant", "tags": ["é", 1]}
    assert tenant.call("put", key, "from the tenant", {"metadata": metadata}) is None
    response = tenant.api_get(key)
    assert (response.status_code, response.content) == (200, b"from the tenant")
    assert tenant.api_metadata(key) == metadata
    assert key in [k["name"] for k in tenant.api_keys()]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("text é", "text é".encode()),
        ({"bytes": b64(b"\x00\x01\xfe\xff")}, b"\x00\x01\xfe\xff"),
        ({"view": b64(b"middle")}, b"middle"),
        ({"stream": ["chunk one, ", "chunk two"]}, b"chunk one, chunk two"),
    ],
    ids=["string", "arraybuffer", "view", "stream"],
)
def test_put_accepts_every_value_type(tenant: Tenant, value: Any, stored: bytes) -> None:
    tenant.call("put", "typed", value)
    assert tenant.api_get("typed").content == stored
    assert tenant.call("get", "typed", "arrayBuffer") == {"bytes": b64(stored)}


def test_put_refuses_other_values(tenant: Tenant) -> None:
    answer = tenant.answer("put", "number", 42)
    assert answer["name"] == "TypeError"
    assert "accepts only strings, ArrayBuffers" in answer["error"]
    assert tenant.api_get("number").status_code == 404


def test_missing_keys_read_as_null(tenant: Tenant) -> None:
    assert tenant.call("get", "never-written") is None
    assert tenant.call("get", "never-written", "json") is None
    assert tenant.call("get", "never-written", "stream") is None
    assert tenant.call("getWithMetadata", "never-written") == {
        "value": None,
        "metadata": None,
        "cacheStatus": None,
    }


def test_an_unknown_type_is_a_type_error(tenant: Tenant) -> None:
    answer = tenant.answer("get", "plain", "blob")
    assert answer["name"] == "TypeError"
    assert "Unknown response type" in answer["error"]


def test_delete(tenant: Tenant) -> None:
    tenant.api_put("doomed", b"x")
    assert tenant.call("delete", "doomed") is None
    assert tenant.api_get("doomed").status_code == 404
    assert tenant.call("get", "doomed") is None
    assert tenant.call("delete", "doomed") is None  # deleting a missing key is fine


def test_bulk_get(tenant: Tenant) -> None:
    tenant.api_put("bulk-1", b'{"a":1}', metadata={"m": 1})
    tenant.api_put("bulk-2", b'{"a":2}')
    assert tenant.call("get", ["bulk-1", "bulk-2", "bulk-none"], "json") == {
        "map": [["bulk-1", {"a": 1}], ["bulk-2", {"a": 2}], ["bulk-none", None]]
    }
    assert tenant.call("getWithMetadata", ["bulk-1", "bulk-none"]) == {
        "map": [
            ["bulk-1", {"value": '{"a":1}', "metadata": {"m": 1}}],
            ["bulk-none", {"value": None, "metadata": None}],
        ]
    }


def test_expiration_ttl_and_expiration(live: LivePlatform, tenant: Tenant) -> None:
    tenant.call("put", "ttl", "brief", {"expirationTtl": 120, "metadata": {"ttl": True}})
    at = int(time.time()) + 600
    tenant.call("put", "absolute", "later", {"expiration": at})
    listed = {k["name"]: k for k in tenant.api_keys()}
    assert abs(listed["ttl"]["expiration"] - (time.time() + 120)) < 10
    assert listed["ttl"]["metadata"] == {"ttl": True}
    assert listed["absolute"]["expiration"] == at
    assert tenant.api_get("ttl").headers["expiration"] == str(listed["ttl"]["expiration"])
    # The control plane's clock decides: two minutes on, the first is gone, the second is not.
    live.clock.offset = timedelta(seconds=121)
    try:
        assert tenant.call("get", "ttl") is None
        assert tenant.call("getWithMetadata", "ttl") == {
            "value": None,
            "metadata": None,
            "cacheStatus": None,
        }
        assert tenant.call("get", "absolute") == "later"
        names = [k["name"] for k in tenant.call("list", {"prefix": ""})["keys"]]
        assert "ttl" not in names and "absolute" in names
    finally:
        live.clock.offset = timedelta(0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"expirationTtl": 30}, "KV PUT failed: 400 expiration_ttl must be at least 60 seconds."),
        ({"expiration": 1000}, "KV PUT failed: 400 expiration must be at least 60 seconds"),
    ],
)
def test_control_plane_refusals_are_thrown_with_their_message(
    tenant: Tenant, options: dict[str, Any], message: str
) -> None:
    answer = tenant.answer("put", "refused", "v", options)
    assert answer["name"] == "Error"
    assert answer["error"].startswith(f"Error: {message}"), answer
    assert tenant.api_get("refused").status_code == 404


def test_invalid_keys_are_refused(tenant: Tenant) -> None:
    for key in ("", ".", ".."):
        answer = tenant.answer("put", key, "v")
        assert "KV PUT failed: 400" in answer["error"], (key, answer)
    assert "KV PUT failed: 400" in tenant.answer("put", "k" * 513, "v")["error"]
    oversized = tenant.answer("put", "meta", "v", {"metadata": {"big": "x" * 2000}})
    assert "KV PUT failed: 400 KV metadata is at most 1024 bytes" in oversized["error"]


def test_list_with_prefix_cursor_and_limit(live: LivePlatform) -> None:
    tenant = Tenant(live, "lister")
    names = [f"page/{i:02d}" for i in range(7)]
    for i, name in enumerate(names):
        tenant.api_put(name, b"v", metadata={"i": i} if i % 2 else None)
    tenant.api_put("other", b"v")

    first = tenant.call("list", {"prefix": "page/", "limit": 3})
    assert first["list_complete"] is False and first["cursor"]
    assert first["keys"] == [
        {"name": "page/00"},
        {"name": "page/01", "metadata": {"i": 1}},
        {"name": "page/02"},
    ]
    seen, cursor, pages = [k["name"] for k in first["keys"]], first["cursor"], 1
    while cursor:
        page = tenant.call("list", {"prefix": "page/", "limit": 3, "cursor": cursor})
        seen += [k["name"] for k in page["keys"]]
        pages += 1
        cursor = page.get("cursor")
        assert page["list_complete"] is (cursor is None)
    assert (seen, pages) == (names, 3)

    everything = tenant.call("list")
    assert [k["name"] for k in everything["keys"]] == ["other", *names]
    assert everything == {"keys": everything["keys"], "list_complete": True, "cacheStatus": None}
    assert tenant.call("list", {"prefix": "nothing/"})["keys"] == []
    assert "KV LIST failed: 400" in tenant.answer("list", {"limit": 0})["error"]
    assert "KV LIST failed: 400" in tenant.answer("list", {"cursor": "not-ours!"})["error"]


ESCAPES = """
export default {
  async fetch(request, env) {
    const tries = {};
    const attempt = async (name, f) => {
      try { tries[name] = { value: await f() }; } catch (err) { tries[name] = { error: String(err) }; }
    };
    const target = new URL(request.url).searchParams.get("ns");
    await attempt("traversal", () => env.KV.get(`../${target}/secret`));
    await attempt("query", () => env.KV.get(`secret&namespace_id=${target}`));
    await attempt("props", () => env.KV.ctx);
    await attempt("env", () => env.KV.env);
    await attempt("fetch", () => env.KV.fetch("http://control-plane/internal/v1/kv/" + target + "?key=secret"));
    await attempt("call", () => env.KV.call);
    await attempt("constructor", () => env.KV.constructor("x"));
    await attempt("listed", async () => (await env.KV.list()).keys.map((k) => k.name));
    return Response.json({ tries, env: Object.keys(env), json: JSON.stringify(env) });
  },
};
"""


def test_a_tenant_cannot_reach_another_namespace(live: LivePlatform) -> None:
    victim = Tenant(live, "victim")
    victim.api_put("secret", b"victim's secret")
    attacker = Tenant(live, "attacker")
    live.deploy(
        attacker.account,
        "attacker",
        ESCAPES,
        bindings=[{"type": "kv_namespace", "name": "KV", "namespace_id": attacker.ns}],
    )
    response = live.get(attacker.host, f"/?ns={victim.ns}")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert "victim's secret" not in response.text
    assert victim.ns not in seen["json"] and attacker.ns not in seen["json"]
    assert seen["env"] == ["KV"]
    tries = seen["tries"]
    assert tries["traversal"] == {"value": None}
    assert tries["query"] == {"value": None}
    assert tries["listed"] == {"value": []}
    for name in ("props", "env", "fetch", "call", "constructor"):
        assert "error" in tries[name], (name, tries[name])
    # The attacker's reads were keys of its own namespace, not the victim's.
    assert [k["name"] for k in victim.api_keys()] == ["secret"]

    # Nor can a Worker be bound to another account's namespace.
    refused = live.api.put(
        f"accounts/{attacker.account['id']}/workers/scripts/borrower",
        headers=attacker.headers,
        files={
            "metadata": (
                None,
                json.dumps(
                    {
                        "main_module": "index.js",
                        "compatibility_date": "2025-01-01",
                        "bindings": [
                            {"type": "kv_namespace", "name": "KV", "namespace_id": victim.ns}
                        ],
                    }
                ),
            ),
            "index.js": ("index.js", DRIVER.encode(), "application/javascript+module"),
        },
    )
    assert refused.status_code == 400, refused.text
    assert "does not exist in this account" in refused.text


def test_several_bindings_each_see_their_own_namespace(live: LivePlatform) -> None:
    tenant = Tenant(live, "two")
    second = tenant.create_namespace("second")
    live.deploy(
        tenant.account,
        "two",
        DRIVER,
        bindings=[
            {"type": "kv_namespace", "name": "KV", "namespace_id": tenant.ns},
            {"type": "kv_namespace", "name": "OTHER", "namespace_id": second},
            {"type": "plain_text", "name": "NOT_KV", "text": "plain"},
        ],
    )
    with httpx.Client(timeout=30) as client:

        def call(binding: str, op: str, *args: Any) -> Any:
            body = {"op": op, "args": list(args), "binding": binding}
            response = client.post(
                f"http://127.0.0.1:{live.port}/", headers={"host": tenant.host}, json=body
            )
            return response.json()["value"]

        call("KV", "put", "k", "first")
        call("OTHER", "put", "k", "second")
        assert (call("KV", "get", "k"), call("OTHER", "get", "k")) == ("first", "second")
    other = live.api.get(
        f"accounts/{tenant.account['id']}/storage/kv/namespaces/{second}/values/k",
        headers=tenant.headers,
    )
    assert other.content == b"second"
