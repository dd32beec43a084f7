// Workers Static Assets in the dispatcher (spec wrangler-assets.md §7).
//
// Cloudflare's own asset-worker and router-worker, copied from the pinned miniflare package at
// startup (mayfly/runtime/asset_workers.py), run here unmodified. Each request constructs them in
// the dispatcher's isolate with the env of the tenant's version, the way Cloudflare binds them:
//   asset-worker   CONFIG (html_handling, not_found_handling, base_path, compatibility date and
//                  flags, has_static_routing), ASSETS_MANIFEST (binary: sorted SHA-256 prefixes
//                  of the paths -> content hash, which is also the ETag) and ASSETS_KV_NAMESPACE
//                  (the bytes of a hash, asked from the internal API in the version's account)
//   router-worker  CONFIG (has_user_worker, invoke_user_worker_ahead_of_assets, static_routing),
//                  ASSET_WORKER, USER_WORKER (the tenant's Worker, under the request deadline)
// Not as loaded Workers: an entrypoint of a loaded Worker cannot be handed to another loaded
// Worker, each would cost an isolate per version (the loader never evicts one) and an RPC hop.
//
// A tenant's assets binding (env.ASSETS) is the AssetsBinding entrypoint below, whose props name
// the version: it runs the asset-worker alone (not_found_handling applied, no router).

import { WorkerEntrypoint } from "cloudflare:workers";
import { AssetWorkerInner } from "./cloudflare-asset-worker.js";
import { RouterInnerEntrypoint } from "./cloudflare-router-worker.js";

const SECRET_HEADER = "x-mayfly-internal-secret";
// The binary manifest the asset-worker searches (miniflare's encodeManifest).
const HEADER_SIZE = 20;
const ENTRY_SIZE = 40;
const PATH_HASH_SIZE = 16;
const CONTENT_HASH_OFFSET = 16;
// Sites of versions this shard served, most recently used last. A site of 20,000 files weighs
// about 4 MB: bound them by count and by weight (an evicted site is asked again).
const MAX_SITES = 10000;
const MAX_SITE_BYTES = 64 * 1024 * 1024;
const FILE_WEIGHT = 160; // a manifest entry plus its etag -> {hash, contentType} pair, roughly

const sites = new Map();
let siteBytes = 0;
// "<account id>/<hash>" -> the bytes of a small file, most recently used last. A hash names one
// content in an account (wrangler's is a digest of it; the control plane never replaces a stored
// file), so an entry never goes stale.
const MAX_CACHED_FILE = 256 * 1024;
const MAX_CACHE_BYTES = 32 * 1024 * 1024;
const fileCache = new Map();
let cacheBytes = 0;
// version id -> Promise<site>: an AssetsBinding whose site was evicted asks the internal API once.
const siteLookups = new Map();

// What the dispatcher knows of a version it served: {hasWorker, assets}, assets being null for a
// version without static assets. Undefined when this shard has not seen it (or forgot it).
export function knownSite(versionId) {
  const site = sites.get(versionId);
  if (site !== undefined) {
    sites.delete(versionId);
    sites.set(versionId, site);
  }
  return site;
}

// Builds and remembers the site of a version answer (GET /internal/v1/versions/{id}).
export async function rememberSite(version) {
  const site = {
    hasWorker: version.has_worker !== false,
    assets: version.assets ? await assetsOf(version) : null,
  };
  const previous = sites.get(version.version_id);
  if (previous !== undefined) siteBytes -= weightOf(previous);
  sites.delete(version.version_id);
  sites.set(version.version_id, site);
  siteBytes += weightOf(site);
  for (const [versionId, oldest] of sites) {
    if (sites.size <= MAX_SITES && siteBytes <= MAX_SITE_BYTES) break;
    if (versionId === version.version_id) break;
    sites.delete(versionId);
    siteBytes -= weightOf(oldest);
  }
  return site;
}

// The env entries a version's Worker gets for its assets binding: {} or {[name]: Fetcher}.
export function assetsBindingEnv(ctx, version) {
  if (!version.assets_binding) return {};
  return {
    [version.assets_binding]: ctx.exports.AssetsBinding({ props: { versionId: version.version_id } }),
  };
}

// A request to a version with assets: the router decides between the asset-worker and the
// Worker (`runWorker(request)`, null for an assets-only version).
export async function serveSite(env, ctx, site, request, runWorker) {
  const trouble = { controlPlane: false };
  const assetWorker = new AssetWorkerInner(ctx, assetWorkerEnv(env, site.assets, request, trouble));
  const router = new RouterInnerEntrypoint(ctx, {
    CONFIG: site.assets.routerConfig,
    ASSET_WORKER: assetWorker,
    USER_WORKER: { fetch: (req) => runWorker(req) },
  });
  return answer(() => router.fetch(request), trouble);
}

// env.ASSETS of a tenant's Worker: the asset-worker alone, for the version named by the props.
export class AssetsBinding extends WorkerEntrypoint {
  async fetch(request) {
    let site;
    try {
      site = await siteFor(this.env, this.ctx.props.versionId);
    } catch (err) {
      return unavailable();
    }
    if (!site.assets) return new Response(null, { status: 404 });
    const trouble = { controlPlane: false };
    const assetWorker = new AssetWorkerInner(
      this.ctx,
      assetWorkerEnv(this.env, site.assets, request, trouble),
    );
    return answer(() => assetWorker.fetch(request), trouble);
  }
}

async function siteFor(env, versionId) {
  const known = knownSite(versionId);
  if (known !== undefined) return known;
  let pending = siteLookups.get(versionId);
  if (pending === undefined) {
    pending = internalJson(env, `/internal/v1/versions/${encodeURIComponent(versionId)}`).then(rememberSite);
    siteLookups.set(versionId, pending);
    const clear = () => siteLookups.delete(versionId);
    pending.then(clear, clear);
  }
  return pending;
}

// The asset-worker answers 500 with an empty body when its KV failed: say when that was the
// control plane being unreachable, as the dispatcher does elsewhere.
async function answer(serve, trouble) {
  let response;
  try {
    response = await serve();
  } catch (err) {
    return trouble.controlPlane ? unavailable() : exception();
  }
  if (response.status === 500 && trouble.controlPlane) {
    await response.body?.cancel();
    return unavailable();
  }
  return response;
}

function assetWorkerEnv(env, assets, request, trouble) {
  return {
    CONFIG: assets.assetConfig,
    ASSETS_MANIFEST: assets.manifest,
    ASSETS_KV_NAMESPACE: assetsKV(env, assets, request, trouble),
  };
}

// The asset-worker's view of the stored files: getWithMetadata(etag) -> {value: stream, metadata:
// {contentType}}. Only hashes of this version's manifest exist, and the bytes are asked in the
// version's account: a hash never reaches another account's file.
function assetsKV(env, assets, request, trouble) {
  return {
    async getWithMetadata(etag) {
      const file = assets.files.get(etag);
      if (file === undefined) return { value: null, metadata: null };
      const metadata = file.contentType === null ? null : { contentType: file.contentType };
      if (bodyUnused(request, etag)) return { value: streamOf(new Uint8Array(0)), metadata };
      const key = `${assets.accountId}/${file.hash}`;
      const cached = fileCache.get(key);
      if (cached !== undefined) {
        fileCache.delete(key);
        fileCache.set(key, cached);
        return { value: streamOf(cached), metadata };
      }
      const path = `/internal/v1/assets/${encodeURIComponent(assets.accountId)}/${encodeURIComponent(file.hash)}`;
      let response;
      try {
        response = await internalFetch(env, path);
      } catch (err) {
        trouble.controlPlane = true;
        return { value: null, metadata: null };
      }
      if (!response.ok) {
        // 404: the file is not stored (the asset-worker then answers 500); anything else is the
        // control plane failing.
        if (response.status !== 404) trouble.controlPlane = true;
        await response.body?.cancel();
        return { value: null, metadata: null };
      }
      const length = Number(response.headers.get("content-length") ?? Infinity);
      if (length > MAX_CACHED_FILE) return { value: response.body, metadata };
      let bytes;
      try {
        bytes = new Uint8Array(await response.arrayBuffer());
      } catch (err) {
        trouble.controlPlane = true;
        return { value: null, metadata: null };
      }
      cacheFile(key, bytes);
      return { value: streamOf(bytes), metadata };
    },
  };
}

function cacheFile(key, bytes) {
  fileCache.set(key, bytes);
  cacheBytes += bytes.byteLength;
  for (const [oldKey, old] of fileCache) {
    if (cacheBytes <= MAX_CACHE_BYTES) break;
    fileCache.delete(oldKey);
    cacheBytes -= old.byteLength;
  }
}

// A HEAD, or a GET the asset-worker will answer 304 (its exact test), sends no body: spare the
// control plane the bytes.
function bodyUnused(request, etag) {
  if (request.method.toUpperCase() === "HEAD") return true;
  const ifNoneMatch = request.headers.get("If-None-Match") || "";
  return ifNoneMatch === `"${etag}"` || ifNoneMatch === `W/"${etag}"`;
}

function streamOf(bytes) {
  return new Response(bytes).body;
}

// What the asset-worker and the router need of a version, built once per version.
async function assetsOf(version) {
  const config = version.assets.config || {};
  const files = new Map();
  const entries = await Promise.all(
    Object.entries(version.assets.manifest).map(async ([path, file]) => {
      const etag = await etagOf(file.hash);
      files.set(etag, { hash: file.hash, contentType: file.content_type ?? null });
      return { pathHash: await pathHashOf(path), contentHash: hexBytes(etag) };
    }),
  );
  const runWorkerFirst = config.run_worker_first;
  const routerConfig = { has_user_worker: version.has_worker !== false };
  if (typeof runWorkerFirst === "boolean") {
    routerConfig.invoke_user_worker_ahead_of_assets = runWorkerFirst;
  } else if (Array.isArray(runWorkerFirst)) {
    // As wrangler's parseStaticRouting: "!/x" serves assets at /x, "/x" runs the Worker.
    routerConfig.static_routing = {
      asset_worker: runWorkerFirst.filter((rule) => rule.startsWith("!/")).map((rule) => rule.slice(1)),
      user_worker: runWorkerFirst.filter((rule) => rule.startsWith("/")),
    };
  }
  return {
    accountId: version.account_id,
    // As miniflare's assetConfig. `redirects` and `headers` are the parsed _redirects/_headers
    // (the asset-worker's format), present once the control plane parses them.
    assetConfig: {
      compatibility_date: version.compatibility_date,
      compatibility_flags: [...(version.compatibility_flags || [])],
      html_handling: config.html_handling,
      not_found_handling: config.not_found_handling,
      base_path: config.base_path,
      redirects: config.redirects,
      headers: config.headers,
      has_static_routing: Array.isArray(runWorkerFirst),
    },
    routerConfig,
    manifest: encodeManifest(entries),
    files,
  };
}

function weightOf(site) {
  return site.assets ? site.assets.manifest.byteLength + site.assets.files.size * FILE_WEIGHT : 0;
}

function encodeManifest(entries) {
  entries.sort((a, b) => compareBytes(a.pathHash, b.pathHash));
  const bytes = new Uint8Array(HEADER_SIZE + entries.length * ENTRY_SIZE);
  entries.forEach((entry, i) => {
    const offset = HEADER_SIZE + i * ENTRY_SIZE;
    bytes.set(entry.pathHash, offset);
    bytes.set(entry.contentHash, offset + CONTENT_HASH_OFFSET);
  });
  return bytes.buffer;
}

function compareBytes(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

async function pathHashOf(path) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(path));
  return new Uint8Array(digest, 0, PATH_HASH_SIZE);
}

// The manifest holds 16-byte content hashes, as wrangler's (32 hex) are. Another client's hash (an
// opaque key to the platform) is represented by a digest of it.
async function etagOf(hash) {
  if (/^[0-9a-f]{32}$/.test(hash)) return hash;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(hash));
  return [...new Uint8Array(digest, 0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function hexBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

async function internalJson(env, path) {
  const response = await internalFetch(env, path);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`control plane answered ${response.status} for ${path}`);
  }
  return response.json();
}

// A GET on the internal API. The timeout covers the answer's headers, not its body: a large file
// streams to a slow client for as long as it takes.
async function internalFetch(env, path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), env.SETTINGS.controlPlaneTimeoutMs);
  try {
    return await env.CONTROL_PLANE.fetch(`http://control-plane${path}`, {
      headers: { [SECRET_HEADER]: env.INTERNAL_SECRET },
      signal: abort.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

function unavailable() {
  return errorResponse(503, "unavailable", "The platform cannot reach its control plane; try again shortly.", {
    "retry-after": "1",
  });
}

function exception() {
  return errorResponse(500, "exception", "The platform failed to serve this Worker's assets.");
}

// As the dispatcher's platformError.
function errorResponse(status, kind, message, headers = {}) {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "x-mayfly-error": kind, ...headers },
  });
}
