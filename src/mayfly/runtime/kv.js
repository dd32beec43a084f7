// The KV binding tenants see: `env.<NAME> = ctx.exports.KV({props: {ns}})` (loader.js).
//
// A JS-RPC stub, not workerd's native KvNamespace (WorkerCode env only carries plain data and
// stubs, workerd-facts §6b), with Cloudflare's methods and semantics. The namespace id is in the
// props, which the platform sets and the tenant can neither read nor change; keys travel as a query
// parameter, so no key names another namespace. Only the class's methods are reachable over RPC:
// every helper is a module-level function.

import { WorkerEntrypoint } from "cloudflare:workers";

const SECRET_HEADER = "x-mayfly-internal-secret";
const METADATA_HEADER = "x-mayfly-kv-metadata";
const EXPIRATION_HEADER = "x-mayfly-kv-expiration";
const TYPES = ["text", "json", "arrayBuffer", "stream"];
const MAX_BULK_KEYS = 100;

export class KV extends WorkerEntrypoint {
  async get(key, options) {
    const type = readType(options);
    if (Array.isArray(key)) return getMany(this, key, type, false);
    const entry = await getEntry(this, key, type);
    return entry === null ? null : entry.value;
  }

  async getWithMetadata(key, options) {
    const type = readType(options);
    if (Array.isArray(key)) return getMany(this, key, type, true);
    const entry = await getEntry(this, key, type);
    return entry === null
      ? { value: null, metadata: null, cacheStatus: null }
      : { value: entry.value, metadata: entry.metadata, cacheStatus: null };
  }

  async put(key, value, options = {}) {
    const name = keyName(key);
    const body = await valueBytes(value);
    const query = new URLSearchParams({ key: name });
    const { expiration, expirationTtl, metadata } = options ?? {};
    if (expirationTtl !== undefined && expirationTtl !== null) {
      query.set("expiration_ttl", String(wholeNumber("expirationTtl", expirationTtl)));
    } else if (expiration !== undefined && expiration !== null) {
      query.set("expiration", String(wholeNumber("expiration", expiration)));
    }
    const headers = {};
    if (metadata !== undefined && metadata !== null) {
      headers[METADATA_HEADER] = asciiJson(metadata);
    }
    const response = await call(this, "PUT", `?${query}`, { body, headers });
    await failUnlessOk("PUT", response);
    await response.body?.cancel();
  }

  async delete(key) {
    const query = new URLSearchParams({ key: keyName(key) });
    const response = await call(this, "DELETE", `?${query}`);
    await failUnlessOk("DELETE", response);
    await response.body?.cancel();
  }

  async list(options = {}) {
    const { prefix, cursor, limit } = options ?? {};
    const query = new URLSearchParams();
    if (prefix !== undefined && prefix !== null) query.set("prefix", String(prefix));
    if (cursor !== undefined && cursor !== null) query.set("cursor", String(cursor));
    if (limit !== undefined && limit !== null) query.set("limit", String(wholeNumber("limit", limit)));
    const response = await call(this, "GET", `/keys?${query}`);
    await failUnlessOk("LIST", response);
    const answer = await response.json();
    const result = { keys: answer.keys, list_complete: answer.list_complete, cacheStatus: null };
    if (!answer.list_complete) result.cursor = answer.cursor;
    return result;
  }
}

// The control plane must answer within controlPlaneTimeoutMs; a value's body may then take as long
// as the tenant takes to read it (a "stream" read).
async function call(binding, method, pathAndQuery, init = {}) {
  const { env, ctx } = binding;
  const ns = encodeURIComponent(ctx.props.ns);
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error("KV: the platform did not answer in time; try again.")),
    env.SETTINGS.controlPlaneTimeoutMs,
  );
  try {
    return await env.CONTROL_PLANE.fetch(`http://control-plane/internal/v1/kv/${ns}${pathAndQuery}`, {
      method,
      body: init.body,
      headers: { [SECRET_HEADER]: env.INTERNAL_SECRET, ...(init.headers ?? {}) },
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

// A 4xx/5xx becomes an Error with the control plane's message, as Cloudflare's "KV PUT failed: 400 …".
async function failUnlessOk(operation, response) {
  if (response.ok) return;
  let message = response.statusText;
  try {
    const answer = await response.json();
    if (answer && typeof answer.error === "string") message = answer.error;
  } catch {
    // not JSON: keep the status text
  }
  throw new Error(`KV ${operation} failed: ${response.status} ${message}`);
}

async function getEntry(binding, key, type) {
  const query = new URLSearchParams({ key: keyName(key) });
  const response = await call(binding, "GET", `?${query}`);
  if (response.status === 404) {
    await response.body?.cancel();
    return null;
  }
  await failUnlessOk("GET", response);
  const metadata = JSON.parse(response.headers.get(METADATA_HEADER) ?? "null");
  const expiration = response.headers.get(EXPIRATION_HEADER);
  return {
    value: await decode(response, type),
    metadata,
    expiration: expiration === null ? null : Number(expiration),
  };
}

// Cloudflare's bulk read: get([k1, k2, …]) → Map of key → value (null when missing); text or json.
async function getMany(binding, keys, type, withMetadata) {
  if (keys.length > MAX_BULK_KEYS) {
    throw new TypeError(`You can request at most ${MAX_BULK_KEYS} keys at once.`);
  }
  if (type !== "text" && type !== "json") {
    throw new TypeError('Bulk reads support only the types "text" and "json".');
  }
  const entries = await Promise.all(keys.map((key) => getEntry(binding, key, type)));
  const found = new Map();
  keys.forEach((key, i) => {
    const entry = entries[i];
    const value = entry === null ? null : entry.value;
    found.set(String(key), withMetadata ? { value, metadata: entry?.metadata ?? null } : value);
  });
  return found;
}

function decode(response, type) {
  switch (type) {
    case "text":
      return response.text();
    case "json":
      return response.json();
    case "arrayBuffer":
      return response.arrayBuffer();
    case "stream":
      return response.body ?? new Response(new Uint8Array(0)).body;
  }
}

function readType(options) {
  if (options === undefined || options === null) return "text";
  const type = typeof options === "string" ? options : options.type ?? "text";
  if (!TYPES.includes(type)) {
    throw new TypeError(
      'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
    );
  }
  return type;
}

function keyName(key) {
  return String(key);
}

async function valueBytes(value) {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
  throw new TypeError(
    "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.",
  );
}

function wholeNumber(name, value) {
  const number = Number(value);
  if (!Number.isFinite(number)) throw new TypeError(`${name} must be a number of seconds.`);
  return Math.floor(number);
}

// Header values must be Latin-1: escape everything beyond ASCII (the JSON stays the same JSON).
function asciiJson(value) {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError("KV metadata must be serializable to JSON.");
  return text.replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
