"""R2 bindings in real workerd shards against the real control plane: Cloudflare's R2Bucket API
(get with ranges and conditions, put with metadata and checksums, head, list, delete, multipart
uploads), objects the API sees, and no way into another account's bucket."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

# One scenario per request: POST {scenario, args} -> JSON.
DRIVER = """
const enc = (s) => new TextEncoder().encode(s);
const described = (o) => o && {
  key: o.key, size: o.size, etag: o.etag, httpEtag: o.httpEtag, version: o.version,
  uploaded: o.uploaded instanceof Date, httpMetadata: o.httpMetadata,
  customMetadata: o.customMetadata, range: o.range ?? null, checksums: o.checksums.toJSON(),
  hasBody: "body" in o, storageClass: o.storageClass,
};

const scenarios = {
  async put(env, [key, text, options]) {
    return described(await env.BUCKET.put(key, text, options));
  },
  async get(env, [key, options]) {
    const o = await env.BUCKET.get(key, options);
    if (o === null) return null;
    const out = described(o);
    if ("body" in o) out.text = await o.text();
    const headers = new Headers();
    o.writeHttpMetadata(headers);
    out.headers = Object.fromEntries(headers);
    return out;
  },
  async getConditional(env, [key, headers]) {
    const o = await env.BUCKET.get(key, { onlyIf: new Headers(headers) });
    return o && { hasBody: "body" in o };
  },
  async head(env, [key]) {
    return described(await env.BUCKET.head(key));
  },
  async del(env, [keys]) {
    await env.BUCKET.delete(keys);
    return true;
  },
  async list(env, [options]) {
    const page = await env.BUCKET.list(options);
    return {
      keys: page.objects.map((o) => o.key),
      meta: page.objects.map((o) => o.httpMetadata),
      truncated: page.truncated,
      cursor: page.cursor ?? null,
      prefixes: page.delimitedPrefixes,
    };
  },
  async checksum(env, [key, text, sha]) {
    return described(await env.BUCKET.put(key, text, { sha256: sha }));
  },
  async multipart(env, [key, sizes]) {
    const upload = await env.BUCKET.createMultipartUpload(key, { httpMetadata: { contentType: "x/y" } });
    const parts = [];
    for (let i = 0; i < sizes.length; i++) {
      parts.push(await upload.uploadPart(i + 1, new Uint8Array(sizes[i]).fill(65 + i)));
    }
    const resumed = env.BUCKET.resumeMultipartUpload(key, upload.uploadId);
    const object = await resumed.complete(parts);
    const read = await env.BUCKET.get(key);
    const bytes = new Uint8Array(await read.arrayBuffer());
    return { ...described(object), length: bytes.length, first: bytes[0], last: bytes[bytes.length - 1] };
  },
  async abort(env, [key]) {
    const upload = await env.BUCKET.createMultipartUpload(key);
    await upload.uploadPart(1, "part");
    await upload.abort();
    try {
      await upload.complete([{ partNumber: 1, etag: "x" }]);
      return "completed";
    } catch (err) {
      return String(err);
    }
  },
  async serve(env, [key]) {
    const o = await env.BUCKET.get(key);
    const headers = new Headers();
    o.writeHttpMetadata(headers);
    headers.set("etag", o.httpEtag);
    return new Response(o.body, { headers });
  },
};

export default {
  async fetch(request, env) {
    const { scenario, args = [] } = await request.json();
    try {
      const value = await scenarios[scenario](env, args);
      return value instanceof Response ? value : Response.json({ value: value ?? null });
    } catch (err) {
      return Response.json({ error: String(err) });
    }
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("r2")))
    yield live
    live.close()


class Tenant:
    def __init__(self, live: LivePlatform, bucket: str = "store"):
        self.live = live
        self.account = live.provision()
        self.headers = auth(self.account["apiToken"])
        self.bucket = bucket
        response = live.api.post(self.base, headers=self.headers, json={"name": bucket})
        assert response.status_code == 200, response.text
        live.deploy(
            self.account,
            "r2",
            DRIVER,
            bindings=[{"type": "r2_bucket", "name": "BUCKET", "bucket_name": bucket}],
        )
        self.host = live.host(self.account, "r2")

    @property
    def base(self) -> str:
        return f"accounts/{self.account['id']}/r2/buckets"

    def raw(self, scenario: str, *args: Any) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            return client.post(
                f"http://127.0.0.1:{self.live.port}/",
                headers={"host": self.host},
                content=json.dumps({"scenario": scenario, "args": list(args)}),
            )

    def run(self, scenario: str, *args: Any) -> Any:
        response = self.raw(scenario, *args)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "error" not in answer, answer
        return answer["value"]


@pytest.fixture(scope="module")
def tenant(live: LivePlatform) -> Tenant:
    return Tenant(live)


def test_put_then_get_with_metadata(tenant: Tenant) -> None:
    put = tenant.run(
        "put",
        "docs/a.txt",
        "hello r2",
        {"httpMetadata": {"contentType": "text/plain"}, "customMetadata": {"who": "me"}},
    )
    md5 = hashlib.md5(b"hello r2").hexdigest()
    assert put["etag"] == md5 and put["httpEtag"] == f'"{md5}"'
    assert put["size"] == 8 and put["uploaded"] is True and put["storageClass"] == "Standard"
    assert put["checksums"] == {"md5": md5}
    got = tenant.run("get", "docs/a.txt")
    assert got["text"] == "hello r2"
    assert got["httpMetadata"] == {"contentType": "text/plain"}
    assert got["customMetadata"] == {"who": "me"}
    assert got["headers"] == {"content-type": "text/plain"}
    assert got["version"] == put["version"]
    # The API (wrangler's view) reads what the Worker wrote.
    api = tenant.live.api.get(f"{tenant.base}/store/objects/docs/a.txt", headers=tenant.headers)
    assert api.status_code == 200 and api.content == b"hello r2"
    assert api.headers["content-type"] == "text/plain" and api.headers["etag"] == f'"{md5}"'


def test_the_worker_reads_what_the_api_wrote_and_serves_it(tenant: Tenant) -> None:
    response = tenant.live.api.put(
        f"{tenant.base}/store/objects/site/index.html",
        headers={**tenant.headers, "content-type": "text/html"},
        content=b"<h1>hi</h1>",
    )
    assert response.status_code == 200, response.text
    served = tenant.raw("serve", "site/index.html")
    assert served.text == "<h1>hi</h1>"
    assert served.headers["content-type"] == "text/html"
    assert served.headers["etag"] == f'"{hashlib.md5(b"<h1>hi</h1>").hexdigest()}"'


def test_missing_objects_are_null(tenant: Tenant) -> None:
    assert tenant.run("get", "nope") is None
    assert tenant.run("head", "nope") is None


def test_ranges(tenant: Tenant) -> None:
    tenant.run("put", "digits", "0123456789")
    assert tenant.run("get", "digits", {"range": {"offset": 2, "length": 3}})["text"] == "234"
    got = tenant.run("get", "digits", {"range": {"suffix": 4}})
    assert got["text"] == "6789" and got["range"] == {"offset": 6, "length": 4}
    assert tenant.run("get", "digits", {"range": {"offset": 7}})["text"] == "789"
    refused = tenant.raw("get", "digits", {"range": {"offset": 50}}).json()
    assert "10039" in refused["error"]


def test_conditional_get_and_put(tenant: Tenant) -> None:
    put = tenant.run("put", "cond", "v1")
    etag = put["etag"]
    assert tenant.run("getConditional", "cond", {"if-none-match": f'"{etag}"'}) == {
        "hasBody": False
    }
    assert tenant.run("getConditional", "cond", {"if-match": f'"{etag}"'}) == {"hasBody": True}
    assert tenant.run("get", "cond", {"onlyIf": {"etagMatches": "other"}})["hasBody"] is False
    # put with onlyIf that fails: null, and nothing written
    assert tenant.run("put", "cond", "v2", {"onlyIf": {"etagMatches": "other"}}) is None
    assert tenant.run("get", "cond")["text"] == "v1"
    assert tenant.run("put", "cond", "v2", {"onlyIf": {"etagMatches": etag}})["size"] == 2
    # create-only: etagDoesNotMatch "*" on an existing object fails
    assert tenant.run("put", "cond", "v3", {"onlyIf": {"etagDoesNotMatch": "*"}}) is None


def test_checksums_are_verified(tenant: Tenant) -> None:
    good = hashlib.sha256(b"summed").hexdigest()
    stored = tenant.run("checksum", "summed", "summed", good)
    assert stored["checksums"]["sha256"] == good
    refused = tenant.raw("checksum", "summed2", "summed", "00" * 32).json()
    assert "10037" in refused["error"]
    assert tenant.run("head", "summed2") is None


def test_list_with_prefix_delimiter_cursor_and_include(live: LivePlatform) -> None:
    tenant = Tenant(live, "listing")
    for key in ["a/1", "a/2", "a/b/3", "b/1", "c"]:
        tenant.run("put", key, "x", {"httpMetadata": {"contentType": "t/x"}})
    everything = tenant.run("list", {})
    assert everything["keys"] == ["a/1", "a/2", "a/b/3", "b/1", "c"]
    assert everything["truncated"] is False and everything["meta"] == [{}] * 5
    top = tenant.run("list", {"delimiter": "/"})
    assert top["keys"] == ["c"] and top["prefixes"] == ["a/", "b/"]
    inside = tenant.run("list", {"prefix": "a/", "delimiter": "/", "include": ["httpMetadata"]})
    assert inside["keys"] == ["a/1", "a/2"] and inside["prefixes"] == ["a/b/"]
    assert inside["meta"] == [{"contentType": "t/x"}] * 2
    seen: list[str] = []
    cursor = None
    while True:
        page = tenant.run("list", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += page["keys"]
        if not page["truncated"]:
            break
        cursor = page["cursor"]
    assert seen == everything["keys"]
    assert tenant.run("list", {"startAfter": "a/b/3"})["keys"] == ["b/1", "c"]


def test_delete_one_and_many(tenant: Tenant) -> None:
    for key in ("d1", "d2", "d3"):
        tenant.run("put", key, key)
    tenant.run("del", "d1")
    tenant.run("del", ["d2", "d3", "never-there"])
    assert [tenant.run("head", k) for k in ("d1", "d2", "d3")] == [None, None, None]


def test_multipart_upload(tenant: Tenant) -> None:
    big = 5 * 1024 * 1024
    done = tenant.run("multipart", "big.bin", [big, 10])
    assert done["size"] == big + 10 and done["etag"].endswith("-2")
    assert done["httpMetadata"] == {"contentType": "x/y"}
    assert done["length"] == big + 10 and done["first"] == 65 and done["last"] == 66
    assert "10007" in tenant.run("abort", "aborted.bin")


def test_a_tenant_cannot_reach_another_accounts_bucket(live: LivePlatform, tenant: Tenant) -> None:
    tenant.run("put", "secret", "victim's")
    attacker = live.provision()
    headers = auth(attacker["apiToken"])
    # Through the API: the victim's bucket name means nothing in the attacker's account.
    base = f"accounts/{attacker['id']}/r2/buckets"
    assert live.api.get(f"{base}/store/objects/secret", headers=headers).status_code == 404
    assert live.api.get(
        f"accounts/{tenant.account['id']}/r2/buckets/store/objects/secret", headers=headers
    ).status_code in (401, 403)
    # Through a binding: naming the victim's bucket is refused at upload.
    response = live.api.put(
        f"{base.rsplit('/r2', 1)[0]}/workers/scripts/thief",
        headers=headers,
        **_upload([{"type": "r2_bucket", "name": "B", "bucket_name": "store"}]),
    )
    assert response.status_code == 400, response.text
    assert "does not exist in this account" in response.json()["errors"][0]["message"]
    # And a bucket of its own with the same name holds its own objects only.
    assert live.api.post(base, headers=headers, json={"name": "store"}).status_code == 200
    live.deploy(
        attacker,
        "r2",
        DRIVER,
        bindings=[{"type": "r2_bucket", "name": "BUCKET", "bucket_name": "store"}],
    )
    with httpx.Client(timeout=30) as client:
        answer = client.post(
            f"http://127.0.0.1:{live.port}/",
            headers={"host": live.host(attacker, "r2")},
            content=json.dumps({"scenario": "get", "args": ["secret"]}),
        ).json()
    assert answer == {"value": None}


def _upload(bindings: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.conftest import upload_body

    return upload_body(
        modules={
            "index.js": (
                b"export default {fetch(){return new Response('x')}}",
                "application/javascript+module",
            )
        },
        bindings=bindings,
    )
