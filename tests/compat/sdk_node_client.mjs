// The official `cloudflare` npm SDK (pinned in package.json) against `mayfly serve`: every method
// of the resources Mayfly serves; node:assert fails the run (tests/compat/test_sdk_node.py).
// Environment: MAYFLY_BASE_URL (…/client/v4), MAYFLY_TOKEN, MAYFLY_ACCOUNT_ID, MAYFLY_ACCOUNT_NAME.
import assert from "node:assert/strict";
import Cloudflare from "cloudflare";

const account_id = process.env.MAYFLY_ACCOUNT_ID;
const cf = new Cloudflare({
  apiToken: process.env.MAYFLY_TOKEN,
  baseURL: process.env.MAYFLY_BASE_URL,
  maxRetries: 0,
});
const WORKER = "node-sdk-worker";
const CODE = 'export default { fetch() { return new Response("from node"); } };';
const steps = [];
const step = (name) => steps.push(name);

async function all(page) {
  const items = [];
  for await (const item of page) items.push(item);
  return items;
}

// accounts, token verify
const accounts = await all(cf.accounts.list());
assert.deepEqual(accounts.map((a) => a.id), [account_id]);
assert.equal((await cf.accounts.get({ account_id })).id, account_id);
assert.equal((await cf.accounts.tokens.verify({ account_id })).status, "active");
step("accounts");

// scripts: upload, list, get, content. The SDK's own upload methods (scripts.update,
// versions.create) send their FormData with `Content-Type: application/javascript` and fields
// named `metadata[main_module]` and `files[]` (7.3.0), which no server can read as a Worker
// upload: uploads go through fetch, as wrangler sends them.
async function upload(path, method) {
  const form = new FormData();
  form.set("metadata", new Blob([JSON.stringify({ main_module: "index.js", compatibility_date: "2025-01-01" })], { type: "application/json" }));
  form.set("index.js", new Blob([CODE], { type: "application/javascript+module" }), "index.js");
  const response = await fetch(`${process.env.MAYFLY_BASE_URL}/accounts/${account_id}/workers/scripts/${WORKER}${path}`, {
    method,
    body: form,
    headers: { authorization: `Bearer ${process.env.MAYFLY_TOKEN}` },
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.result;
}
const uploaded = await upload("", "PUT");
assert.equal(uploaded.id, WORKER);
const scripts = await all(cf.workers.scripts.list({ account_id }));
assert.ok(scripts.some((s) => s.id === WORKER));
assert.ok((await cf.workers.scripts.get(WORKER, { account_id })).includes(CODE));
const content = await cf.workers.scripts.content.get(WORKER, { account_id });
assert.equal(content.headers.get("cf-entrypoint"), "index.js");
assert.ok((await content.text()).includes(CODE));
step("scripts");

// settings, script-and-version settings
const s = cf.workers.scripts;
assert.equal((await s.settings.get(WORKER, { account_id })).logpush, false);
assert.deepEqual((await s.settings.edit(WORKER, { account_id, tags: ["x"] })).tags, ["x"]);
assert.equal((await s.scriptAndVersionSettings.get(WORKER, { account_id })).compatibility_date, "2025-01-01");
const edited = await s.scriptAndVersionSettings.edit(WORKER, { account_id, settings: { logpush: true } });
assert.equal(edited.logpush, true);
step("settings");

// secrets, incl. bulk
await s.secrets.update(WORKER, { account_id, name: "ONE", text: "1", type: "secret_text" });
assert.deepEqual((await all(s.secrets.list(WORKER, { account_id }))).map((x) => x.name), ["ONE"]);
assert.equal((await s.secrets.get("ONE", { account_id, script_name: WORKER })).name, "ONE");
const bulk = await s.secrets.bulkUpdate(WORKER, {
  account_id,
  secrets: { TWO: { name: "TWO", text: "2", type: "secret_text" }, ONE: null },
});
assert.deepEqual(Object.keys(bulk), ["TWO"]);
await s.secrets.delete("TWO", { account_id, script_name: WORKER });
assert.deepEqual(await all(s.secrets.list(WORKER, { account_id })), []);
step("secrets");

// versions and deployments: the iterators end
const version = await upload("/versions", "POST");
const versions = await all(s.versions.list(WORKER, { account_id, per_page: 1 }));
assert.ok(versions.length >= 2 && versions.some((v) => v.id === version.id));
assert.equal(new Set(versions.map((v) => v.id)).size, versions.length);
assert.equal((await s.versions.get(version.id, { account_id, script_name: WORKER })).id, version.id);
const deployment = await s.deployments.create(WORKER, {
  account_id,
  strategy: "percentage",
  versions: [{ version_id: version.id, percentage: 100 }],
});
const deployments = await all(s.deployments.list(WORKER, { account_id, per_page: 1 }));
assert.ok(deployments.some((d) => d.id === deployment.id));
assert.equal((await s.deployments.get(deployment.id, { account_id, script_name: WORKER })).id, deployment.id);
assert.equal(new Set(deployments.map((d) => d.id)).size, deployments.length);
step("versions-deployments");

// schedules, subdomains, tail, account settings
assert.deepEqual((await s.schedules.get(WORKER, { account_id })).schedules, []);
assert.equal((await s.subdomain.get(WORKER, { account_id })).enabled, true);
await s.subdomain.delete(WORKER, { account_id });
assert.equal((await s.subdomain.get(WORKER, { account_id })).enabled, false);
assert.equal((await s.subdomain.create(WORKER, { account_id, enabled: true })).enabled, true);
const tail = await s.tail.create(WORKER, { account_id });
assert.ok(tail.url);
await s.tail.delete(tail.id, { account_id, script_name: WORKER });
assert.equal((await cf.workers.subdomains.get({ account_id })).subdomain, process.env.MAYFLY_ACCOUNT_NAME);
assert.equal((await cf.workers.accountSettings.get({ account_id })).default_usage_model, "standard");
const settings = await cf.workers.accountSettings.update({ account_id, default_usage_model: "standard" });
assert.equal(settings.green_compute, false);
step("schedules-subdomain-tail");

// KV
const ns = cf.kv.namespaces;
const created = await ns.create({ account_id, title: "node-kv" });
assert.ok((await all(ns.list({ account_id, per_page: 1 }))).some((n) => n.id === created.id));
await ns.update(created.id, { account_id, title: "node-kv-2" });
assert.equal((await ns.get(created.id, { account_id })).title, "node-kv-2");
await ns.values.update("k1", { account_id, namespace_id: created.id, value: "v1", metadata: '{"m":1}' });
assert.equal(await (await ns.values.get("k1", { account_id, namespace_id: created.id })).text(), "v1");
assert.deepEqual(await ns.metadata.get("k1", { account_id, namespace_id: created.id }), { m: 1 });
await ns.bulkUpdate(created.id, {
  account_id,
  body: [0, 1, 2, 3, 4].map((i) => ({ key: `b${i}`, value: `${i}`, metadata: { i } })),
});
const pageKeys = Array.from({ length: 25 }, (_, i) => `page-${String(i).padStart(2, "0")}`);
await ns.bulkUpdate(created.id, { account_id, body: pageKeys.map((key) => ({ key, value: "x" })) });
const paged = await all(ns.keys.list(created.id, { account_id, prefix: "page-", limit: 10 }));
assert.deepEqual(paged.map((k) => k.name), pageKeys, "the cursor iterator reads every page once");
await ns.bulkDelete(created.id, { account_id, body: pageKeys });
const keys = await all(ns.keys.list(created.id, { account_id, limit: 10 }));
assert.deepEqual(keys.map((k) => k.name).sort(), ["b0", "b1", "b2", "b3", "b4", "k1"]);
const got = await ns.bulkGet(created.id, { account_id, keys: ["b1", "nope"], withMetadata: true });
assert.deepEqual(got.values.b1, { value: "1", metadata: { i: 1 }, expiration: null });
assert.deepEqual(got.values.nope, { value: null, metadata: null, expiration: null });
await ns.bulkDelete(created.id, { account_id, body: ["b0", "b1"] });
await ns.values.delete("k1", { account_id, namespace_id: created.id });
assert.equal((await all(ns.keys.list(created.id, { account_id }))).length, 3);
await ns.delete(created.id, { account_id });
step("kv");

await s.delete(WORKER, { account_id });
assert.ok(!(await all(s.list({ account_id }))).some((x) => x.id === WORKER));
step("delete");

console.log(JSON.stringify({ steps }));
