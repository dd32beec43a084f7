// A version loaded into an isolate with the Worker Loader: where its code comes from (pushed with
// its route, prefetched with a route answer, or asked of the control plane), the modules and env
// its isolate gets, and which loader keys this shard already holds (tenantFor).

import { assetsBindingEnv, knownSite, rememberSite } from "./assets.js";
import { internalGet, settings, shared } from "./control.js";
import { R2_MARKER, withR2Client } from "./r2.js";
import { LINGER_BINDING, withPrelude } from "./tenant.js";

// loader key -> Promise<code>, version id -> Promise<{site, version}>: one lookup in flight per key.
const codeLookups = new Map();
const siteLookups = new Map();
// version id -> its code, from a route answer (see prefetch).
const prefetched = new Map();
const MAX_PREFETCHED = 256;
// version id -> {version, bytes}: code pushed with a route, until a request here loads it; at most
// MAX_PUSHED_CODE_BYTES (the oldest goes first: its first request asks for it).
const pushedCode = new Map();
const MAX_PUSHED_CODE_BYTES = 64 * 1024 * 1024;
let pushedCodeBytes = 0;
// Loader keys whose isolate the loader already holds (the loader never evicts them): a version id,
// or `${versionId}:tail` for the same version loaded with a tail while someone tails it.
export const loaded = new Set();

// Versions are immutable: code that came with a route answer is good until the request that asked
// for it takes it (a few at most are waiting at any time).
export function prefetch(versionId, version) {
  prefetched.delete(versionId);
  prefetched.set(versionId, version);
  if (prefetched.size > MAX_PREFETCHED) prefetched.delete(prefetched.keys().next().value);
}

function takePrefetched(versionId) {
  const version = prefetched.get(versionId);
  prefetched.delete(versionId);
  return dropPushedCode(versionId) ?? version;
}

// Code pushed with its route (routes.js: invalidate), unless this shard already has the version.
export function keepPushedCode(versionId, version) {
  if (loaded.has(versionId) || knownSite(versionId) !== undefined) return;
  let bytes = 1024;
  for (const module of version.modules ?? []) {
    bytes += (module.text?.length ?? 0) + (module.base64?.length ?? 0);
  }
  if (bytes > MAX_PUSHED_CODE_BYTES / 4) return;
  dropPushedCode(versionId);
  pushedCode.set(versionId, { version, bytes });
  pushedCodeBytes += bytes;
  while (pushedCodeBytes > MAX_PUSHED_CODE_BYTES) dropPushedCode(pushedCode.keys().next().value);
}

function dropPushedCode(versionId) {
  const kept = pushedCode.get(versionId);
  if (kept === undefined) return undefined;
  pushedCode.delete(versionId);
  pushedCodeBytes -= kept.bytes;
  return kept.version;
}

// A version's site (assets.js: {hasWorker, assets}) and its Worker (null for an assets-only one).
// The version is asked once: a new one's answer also makes its code.
export async function tenantFor(env, ctx, versionId, tailed) {
  let site = knownSite(versionId);
  let version;
  if (site === undefined) {
    ({ site, version } = await shared(siteLookups, versionId, async () => {
      const answer =
        takePrefetched(versionId) ??
        (await internalGet(env, `/internal/v1/versions/${encodeURIComponent(versionId)}`));
      return { site: await rememberSite(answer), version: answer };
    }));
  }
  const worker = site.hasWorker ? await workerFor(env, ctx, versionId, tailed, version) : null;
  return { site, worker };
}

// A tailed Worker runs in an isolate of its own, loaded with a tail; the untailed one keeps serving
// when the last tail closes, so Workers nobody tails pay nothing for tails.
async function workerFor(env, ctx, versionId, tailed, version) {
  const key = tailed ? `${versionId}:tail` : versionId;
  if (loaded.has(key)) {
    // The loader may still ask again (it does not promise to keep an isolate).
    return env.LOADER.get(key, () => loadCode(env, ctx, versionId, tailed));
  }
  // Fetch the code before asking the loader, so a control-plane failure is a retryable 503 rather
  // than a failed isolate cached under this key.
  const code = await shared(codeLookups, key, () => loadCode(env, ctx, versionId, tailed, version));
  const worker = env.LOADER.get(key, () => code);
  loaded.add(key);
  return worker;
}

async function loadCode(env, ctx, versionId, tailed, version) {
  version ??= await internalGet(env, `/internal/v1/versions/${encodeURIComponent(versionId)}`);
  const code = workerCode(env, ctx, version);
  if (tailed) {
    const props = { account_id: version.account_id, script: version.script, version_id: versionId };
    code.tails = [ctx.exports.TailSink({ props })];
  }
  return code;
}

function workerCode(env, ctx, version) {
  const modules = {};
  for (const module of version.modules) {
    modules[module.name] = moduleSource(module);
  }
  return {
    compatibilityDate: version.compatibility_date,
    compatibilityFlags: version.compatibility_flags,
    ...withR2Client(
      withPrelude(version.main_module, modules, mainKind(version), d1Names(version), settings(env).waitUntilMs, settings(env).requestTimeoutMs),
      r2Names(version),
    ),
    env: tenantEnv(env, ctx, version),
    // Always explicit (an omitted globalOutbound would inherit the dispatcher's): Outbound (outbound.js)
    // bounds the version's subrequests (and its account's, by the account the control plane's
    // version record names) and forwards them to PUBLIC_NET.
    globalOutbound: ctx.exports.Outbound({ props: { version: version.version_id, account: version.account_id } }),
  };
}

// What a tenant finds in `env`: its vars, secrets and JSON bindings as the control plane decrypted
// them. Bindings backed by the platform (KV, assets, ...) are added here as RPC stubs whose props
// the platform sets: the tenant cannot read or change them (workerd-facts §6b).
function tenantEnv(env, ctx, version) {
  const tenant = { ...version.env };
  for (const { name, namespace_id } of version.kv_namespaces ?? []) {
    tenant[name] = ctx.exports.KV({ props: { ns: namespace_id } });
  }
  // R2 stubs become R2Buckets inside the tenant's isolate (r2.js: CLIENT_SOURCE reads the marker).
  for (const { name, bucket_id } of version.r2_buckets ?? []) {
    tenant[name] = ctx.exports.R2({ props: { bucket: bucket_id } });
  }
  if (version.r2_buckets?.length) tenant[R2_MARKER] = r2Names(version);
  for (const { name, script_id, service, entrypoint } of version.services ?? []) {
    const props = { script_id, service, entrypoint: entrypoint ?? null, caller: version.version_id };
    tenant[name] = ctx.exports.ServiceBinding({ props });
  }
  for (const { name, database_id } of version.d1_databases ?? []) {
    tenant[name] = ctx.exports.D1({ props: { db: database_id } });
  }
  if (["esm", "cjs"].includes(mainKind(version))) {
    const props = { version: version.version_id, account_id: version.account_id, script: version.script };
    tenant[LINGER_BINDING] = ctx.exports.Linger({ props });
  }
  Object.assign(tenant, assetsBindingEnv(ctx, version));
  return tenant;
}

function d1Names(version) {
  return (version.d1_databases ?? []).map(({ name }) => name);
}

function r2Names(version) {
  return (version.r2_buckets ?? []).map(({ name }) => name);
}

function mainKind(version) {
  return version.modules.find((module) => module.name === version.main_module)?.kind;
}

function moduleSource(module) {
  switch (module.kind) {
    case "esm":
      return { js: module.text };
    case "cjs":
      return { cjs: module.text };
    case "text":
      return { text: module.text };
    case "json":
      return { json: JSON.parse(module.text) };
    case "data":
      return { data: bytesOf(module) };
    case "wasm":
      return { wasm: bytesOf(module) };
    default:
      throw new Error(`unsupported module kind ${module.kind}`);
  }
}

function bytesOf(module) {
  if (module.text !== undefined) return new TextEncoder().encode(module.text).buffer;
  const raw = atob(module.base64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}
