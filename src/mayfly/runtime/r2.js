// R2 bindings. Two halves:
//
// * `R2` (re-exported by dispatcher.js) is the JS-RPC entrypoint a binding's stub reaches:
//   `ctx.exports.R2({props: {bucket}})`, the bucket id set by the platform (routing.py), which the
//   tenant can neither read nor change; keys travel as a query parameter, so no key names another
//   bucket. It speaks plain data: descriptions as JSON, bytes as streams.
// * CLIENT_SOURCE runs inside the tenant's isolate (loader.js adds it as a module evaluated
//   before the tenant's): it replaces each R2 stub in `env` with an R2Bucket whose objects are real
//   R2Object / R2ObjectBody instances (writeHttpMetadata writes into the caller's Headers, body is
//   a stream, arrayBuffer/text/json/blob read it), as on Cloudflare.

import { WorkerEntrypoint } from "cloudflare:workers";

const SECRET_HEADER = "x-mayfly-internal-secret";
const OPTIONS_HEADER = "x-mayfly-r2-options";
const OBJECT_HEADER = "x-mayfly-r2-object";
// The env entry naming the R2 bindings for the client half; removed before the tenant runs.
export const R2_MARKER = "__mayfly_r2_bindings__";
export const CLIENT_MODULE = "__mayfly__/r2.js";

export class R2 extends WorkerEntrypoint {
  async head(key) {
    const response = await call(this, "GET", "object", { key, head: "1" });
    if (response.status === 404) return drop(response, null);
    await failUnlessOk("head", response);
    return drop(response, described(response));
  }

  async get(key, options) {
    const response = await call(this, "GET", "object", { key }, { options });
    if (response.status === 404) return drop(response, null);
    await failUnlessOk("get", response);
    const object = described(response);
    if (response.headers.get("x-mayfly-r2-body") === "none") return drop(response, { object, body: null });
    return { object, body: response.body ?? new Response(new Uint8Array(0)).body };
  }

  async put(key, value, options) {
    const response = await call(this, "PUT", "object", { key }, { options, body: value ?? new Uint8Array(0) });
    if (response.status === 412) return drop(response, null);
    await failUnlessOk("put", response);
    return drop(response, described(response));
  }

  async delete(keys) {
    const response = await call(this, "POST", "delete", {}, { body: JSON.stringify(keys) });
    await failUnlessOk("delete", response);
    await drop(response, null);
  }

  async list(options) {
    const response = await call(this, "GET", "list", {}, { options });
    await failUnlessOk("list", response);
    return response.json();
  }

  async createMultipartUpload(key, options) {
    const response = await call(this, "POST", "multipart/create", { key }, { options });
    await failUnlessOk("createMultipartUpload", response);
    return response.json();
  }

  async uploadPart(key, uploadId, partNumber, value) {
    const query = { key, upload_id: uploadId, part_number: String(partNumber) };
    const response = await call(this, "PUT", "multipart/part", query, { body: value });
    await failUnlessOk("uploadPart", response);
    return response.json();
  }

  async completeMultipartUpload(key, uploadId, parts) {
    const query = { key, upload_id: uploadId };
    const response = await call(this, "POST", "multipart/complete", query, { body: JSON.stringify(parts) });
    await failUnlessOk("completeMultipartUpload", response);
    return drop(response, described(response));
  }

  async abortMultipartUpload(key, uploadId) {
    const response = await call(this, "DELETE", "multipart/abort", { key, upload_id: uploadId });
    await failUnlessOk("abortMultipartUpload", response);
    await drop(response, null);
  }
}

// The control plane must answer within controlPlaneTimeoutMs; a body may then stream for as long
// as the tenant takes to read it.
async function call(binding, method, action, query, init = {}) {
  const { env, ctx } = binding;
  const bucket = encodeURIComponent(ctx.props.bucket);
  const headers = { [SECRET_HEADER]: env.INTERNAL_SECRET };
  if (init.options !== undefined && init.options !== null) headers[OPTIONS_HEADER] = asciiJson(init.options);
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error("R2: the platform did not answer in time; try again.")),
    env.SETTINGS.controlPlaneTimeoutMs,
  );
  try {
    return await env.CONTROL_PLANE.fetch(
      `http://control-plane/internal/v1/r2/${bucket}/${action}?${new URLSearchParams(query)}`,
      { method, body: init.body, headers, signal: controller.signal },
    );
  } finally {
    clearTimeout(timer);
  }
}

function described(response) {
  return JSON.parse(response.headers.get(OBJECT_HEADER));
}

async function drop(response, value) {
  await response.body?.cancel();
  return value;
}

// A refusal becomes an Error shaped as Cloudflare's: "put: <message> (<code>)".
async function failUnlessOk(operation, response) {
  if (response.ok) return;
  let message = response.statusText;
  let code = 10001;
  try {
    const answer = await response.json();
    if (answer && typeof answer.error === "string") message = answer.error;
    if (answer && Number.isInteger(answer.code)) code = answer.code;
  } catch {
    // not JSON: keep the status text
  }
  throw new Error(`${operation}: ${message} (${code})`);
}

// Header values must be Latin-1: escape everything beyond ASCII (the JSON stays the same JSON).
function asciiJson(value) {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

export const CLIENT_SOURCE = `
import { env } from "cloudflare:workers";

const HTTP_FIELDS = {
  contentType: "content-type",
  contentLanguage: "content-language",
  contentDisposition: "content-disposition",
  contentEncoding: "content-encoding",
  cacheControl: "cache-control",
  cacheExpiry: "expires",
};
const CHECKSUMS = ["md5", "sha1", "sha256", "sha384", "sha512"];

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array(text.match(/../g)?.map((h) => parseInt(h, 16)) ?? []).buffer;

class R2Checksums {
  constructor(sums) {
    for (const name of CHECKSUMS) if (sums[name]) this[name] = unhex(sums[name]);
  }
  toJSON() {
    const out = {};
    for (const name of CHECKSUMS) if (this[name]) out[name] = hex(this[name]);
    return out;
  }
}

class R2Object {
  constructor(d) {
    this.key = d.key;
    this.version = d.version;
    this.size = d.size;
    this.etag = d.etag;
    this.httpEtag = d.httpEtag;
    this.uploaded = new Date(d.uploaded);
    const http = { ...(d.httpMetadata ?? {}) };
    if (http.cacheExpiry) http.cacheExpiry = new Date(http.cacheExpiry);
    this.httpMetadata = http;
    this.customMetadata = { ...(d.customMetadata ?? {}) };
    if (d.range) this.range = d.range;
    this.checksums = new R2Checksums(d.checksums ?? {});
    this.storageClass = d.storageClass ?? "Standard";
  }
  writeHttpMetadata(headers) {
    for (const [field, header] of Object.entries(HTTP_FIELDS)) {
      const value = this.httpMetadata[field];
      if (value === undefined || value === null) continue;
      headers.set(header, value instanceof Date ? value.toUTCString() : String(value));
    }
  }
}

class R2ObjectBody extends R2Object {
  #body;
  constructor(d, body) {
    super(d);
    this.#body = body;
  }
  get body() {
    return this.#body;
  }
  get bodyUsed() {
    return this.#body.locked;
  }
  arrayBuffer() {
    return new Response(this.#body).arrayBuffer();
  }
  text() {
    return new Response(this.#body).text();
  }
  json() {
    return new Response(this.#body).json();
  }
  async blob() {
    return new Blob([await this.arrayBuffer()], { type: this.httpMetadata.contentType ?? "" });
  }
}

function iso(value, what) {
  if (value === undefined || value === null) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) throw new TypeError(what + " must be a Date.");
  return date.toISOString();
}

function conditional(onlyIf) {
  if (onlyIf === undefined || onlyIf === null) return undefined;
  if (onlyIf instanceof Headers) {
    const out = {};
    if (onlyIf.has("if-match")) out.etagMatches = onlyIf.get("if-match");
    if (onlyIf.has("if-none-match")) out.etagDoesNotMatch = onlyIf.get("if-none-match");
    if (onlyIf.has("if-unmodified-since")) out.uploadedBefore = iso(onlyIf.get("if-unmodified-since"), "If-Unmodified-Since");
    if (onlyIf.has("if-modified-since")) out.uploadedAfter = iso(onlyIf.get("if-modified-since"), "If-Modified-Since");
    out.secondsGranularity = true;
    return out;
  }
  const out = { ...onlyIf };
  for (const name of ["uploadedBefore", "uploadedAfter"]) {
    if (out[name] !== undefined) out[name] = iso(out[name], "onlyIf." + name);
  }
  return out;
}

function range(value) {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Headers) {
    const header = value.get("range");
    const found = header && /^bytes=(\\d*)-(\\d*)$/.exec(header.trim());
    if (!found) return undefined;
    if (found[1] === "") return { suffix: Number(found[2]) };
    if (found[2] === "") return { offset: Number(found[1]) };
    return { offset: Number(found[1]), length: Number(found[2]) - Number(found[1]) + 1 };
  }
  return { ...value };
}

function httpMetadata(value) {
  if (value === undefined || value === null) return undefined;
  const out = {};
  if (value instanceof Headers) {
    for (const [field, header] of Object.entries(HTTP_FIELDS)) {
      if (value.has(header)) out[field] = value.get(header);
    }
  } else {
    for (const [field, item] of Object.entries(value)) {
      if (item !== undefined && item !== null) out[field] = item instanceof Date ? item.toISOString() : item;
    }
  }
  if (out.cacheExpiry !== undefined) out.cacheExpiry = iso(out.cacheExpiry, "httpMetadata.cacheExpiry");
  return out;
}

function checksums(options) {
  const out = {};
  for (const name of CHECKSUMS) {
    const value = options[name];
    if (value === undefined || value === null) continue;
    if (typeof value === "string") out[name] = value;
    else if (value instanceof ArrayBuffer) out[name] = hex(value);
    else if (ArrayBuffer.isView(value)) out[name] = hex(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
    else throw new TypeError(name + " must be an ArrayBuffer or a hex string.");
  }
  return out;
}

async function bytes(value, what) {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof Blob) return new Uint8Array(await value.arrayBuffer());
  if (value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
  throw new TypeError(what + ": the value must be a string, ArrayBuffer, ArrayBufferView, Blob, ReadableStream or null.");
}

class R2MultipartUpload {
  #stub;
  constructor(stub, key, uploadId) {
    this.#stub = stub;
    this.key = key;
    this.uploadId = uploadId;
  }
  async uploadPart(partNumber, value) {
    return this.#stub.uploadPart(this.key, this.uploadId, partNumber, await bytes(value, "uploadPart"));
  }
  async abort() {
    await this.#stub.abortMultipartUpload(this.key, this.uploadId);
  }
  async complete(uploadedParts) {
    const parts = (uploadedParts ?? []).map((p) => ({ partNumber: p.partNumber, etag: p.etag }));
    return new R2Object(await this.#stub.completeMultipartUpload(this.key, this.uploadId, parts));
  }
}

class R2Bucket {
  #stub;
  constructor(stub) {
    this.#stub = stub;
  }
  async head(key) {
    const d = await this.#stub.head(String(key));
    return d === null ? null : new R2Object(d);
  }
  async get(key, options = {}) {
    const found = await this.#stub.get(String(key), {
      onlyIf: conditional(options?.onlyIf),
      range: range(options?.range),
    });
    if (found === null) return null;
    return found.body === null ? new R2Object(found.object) : new R2ObjectBody(found.object, found.body);
  }
  async put(key, value, options = {}) {
    const d = await this.#stub.put(String(key), await bytes(value, "put"), {
      httpMetadata: httpMetadata(options?.httpMetadata),
      customMetadata: options?.customMetadata,
      checksums: checksums(options ?? {}),
      onlyIf: conditional(options?.onlyIf),
    });
    return d === null ? null : new R2Object(d);
  }
  async delete(keys) {
    const list = Array.isArray(keys) ? keys.map(String) : [String(keys)];
    await this.#stub.delete(list);
  }
  async list(options = {}) {
    const page = await this.#stub.list({
      limit: options?.limit,
      prefix: options?.prefix,
      cursor: options?.cursor,
      delimiter: options?.delimiter,
      startAfter: options?.startAfter,
      include: options?.include,
    });
    const result = {
      objects: page.objects.map((d) => new R2Object(d)),
      truncated: page.truncated,
      delimitedPrefixes: page.delimitedPrefixes,
    };
    if (page.truncated) result.cursor = page.cursor;
    return result;
  }
  async createMultipartUpload(key, options = {}) {
    const created = await this.#stub.createMultipartUpload(String(key), {
      httpMetadata: httpMetadata(options?.httpMetadata),
      customMetadata: options?.customMetadata,
    });
    return new R2MultipartUpload(this.#stub, created.key, created.uploadId);
  }
  resumeMultipartUpload(key, uploadId) {
    return new R2MultipartUpload(this.#stub, String(key), String(uploadId));
  }
}

for (const name of env.${R2_MARKER} ?? []) {
  env[name] = new R2Bucket(env[name]);
}
delete env.${R2_MARKER};
`;

// The tenant's code, loaded after CLIENT_SOURCE has wrapped its R2 bindings.
export function withR2Client(code, names) {
  if (names.length === 0 || !code.mainModule.startsWith("__mayfly__/")) return code;
  const entry = "__mayfly__/entry.js";
  const main = JSON.stringify(`./${code.mainModule.slice("__mayfly__/".length)}`);
  return {
    ...code,
    mainModule: entry,
    modules: {
      ...code.modules,
      [CLIENT_MODULE]: { js: CLIENT_SOURCE },
      // capture.js first: it must run before anything imports cloudflare:workers (tenant.js).
      [entry]: { js: `import "./capture.js";\nimport "./r2.js";\nexport * from ${main};\nexport { default } from ${main};\n` },
    },
  };
}
