// D1 bindings. Two halves:
//
// - `D1`, the entrypoint the dispatcher re-exports: `ctx.exports.D1({props: {db}})` is the RPC stub
//   a version's env carries for a D1 binding (loader.js). The database id is in the props, which
//   the platform sets and the tenant can neither read nor change; every request goes to the control
//   plane's internal API under that id, so no SQL names another database (ATTACH is refused there).
// - `D1_CLIENT_SOURCE`, a module loaded into the tenant's isolate (tenant.js): Cloudflare's
//   synchronous `env.DB.prepare(sql).bind(…)` API (D1Database, D1PreparedStatement, sessions) over
//   that stub, which only has async methods. Results and errors are D1's ("D1_ERROR: …").

import { WorkerEntrypoint } from "cloudflare:workers";

const SECRET_HEADER = "x-mayfly-internal-secret";

export class D1 extends WorkerEntrypoint {
  // statements: [{sql, params}], run in one transaction; raw: rows as arrays.
  async query(statements, raw) {
    return call(this, "query", { batch: statements, raw: Boolean(raw) });
  }

  async exec(sql) {
    return call(this, "exec", { sql: String(sql) });
  }
}

async function call(binding, action, body) {
  const { env, ctx } = binding;
  const db = encodeURIComponent(ctx.props.db);
  const controller = new AbortController();
  // The control plane cancels a runaway query itself; this only bounds a control plane that does
  // not answer at all (its own query limit is at most 30 s).
  const timer = setTimeout(
    () => controller.abort(new Error("D1_ERROR: the platform did not answer in time; try again.")),
    Math.max(env.SETTINGS.controlPlaneTimeoutMs, 35000),
  );
  let response;
  try {
    response = await env.CONTROL_PLANE.fetch(`http://control-plane/internal/v1/d1/${db}/${action}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { [SECRET_HEADER]: env.INTERNAL_SECRET, "content-type": "application/json" },
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const message = typeof answer?.error === "string" ? answer.error : response.statusText;
    throw new Error(message.startsWith("D1_") ? message : `D1_ERROR: ${message}`);
  }
  return answer.result;
}

// The tenant's side. Kept as text: the Worker Loader gets it as one more module of the tenant.
export const D1_CLIENT_SOURCE = `
const STUB = Symbol("d1 stub");
const SQL = Symbol("d1 sql");
const PARAMS = Symbol("d1 params");

function typeError(value) {
  return new Error(
    "D1_TYPE_ERROR: Type '" + typeof value + "' not supported for value '" + String(value) + "'",
  );
}

function encode(value) {
  if (value === null) return null;
  switch (typeof value) {
    case "number":
    case "string":
    case "boolean":
      return value;
    case "object":
      if (value instanceof ArrayBuffer) return { $blob: Array.from(new Uint8Array(value)) };
      if (ArrayBuffer.isView(value)) {
        return {
          $blob: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)),
        };
      }
      throw typeError(value);
    default:
      throw typeError(value);
  }
}

function wrapError(err) {
  const message = String(err?.message ?? err);
  const error = new Error(message.startsWith("D1_") ? message : "D1_ERROR: " + message);
  error.cause = err;
  return error;
}

async function send(stub, statements, raw) {
  try {
    return await stub.query(statements, raw);
  } catch (err) {
    throw wrapError(err);
  }
}

function payload(statement) {
  if (!(statement instanceof D1PreparedStatement)) {
    throw new TypeError("D1: batch() takes statements made by prepare().");
  }
  return { sql: statement[SQL], params: statement[PARAMS] };
}

export class D1PreparedStatement {
  constructor(stub, sql, params = []) {
    this[STUB] = stub;
    this[SQL] = sql;
    this[PARAMS] = params;
  }

  bind(...values) {
    return new D1PreparedStatement(this[STUB], this[SQL], values.map(encode));
  }

  async first(column) {
    const [result] = await send(this[STUB], [payload(this)], false);
    const row = result.results[0];
    if (column === undefined) return row ?? null;
    if (row === undefined) return null;
    if (!(column in row)) throw new Error("D1_COLUMN_NOTFOUND: Column not found (" + column + ")");
    return row[column];
  }

  async run() {
    const [result] = await send(this[STUB], [payload(this)], false);
    return result;
  }

  async all() {
    const [result] = await send(this[STUB], [payload(this)], false);
    return result;
  }

  async raw(options) {
    const [result] = await send(this[STUB], [payload(this)], true);
    const { columns, rows } = result.results;
    return options?.columnNames ? [columns, ...rows] : rows;
  }
}

class D1DatabaseSession {
  constructor(stub, bookmark) {
    this[STUB] = stub;
    this.bookmark = bookmark;
  }

  prepare(sql) {
    return new D1PreparedStatement(this[STUB], String(sql));
  }

  async batch(statements) {
    return send(this[STUB], statements.map(payload), false);
  }

  // One primary, no replicas: every read sees every earlier write, so there is no bookmark to keep.
  getBookmark() {
    return this.bookmark;
  }
}

export class D1Database {
  constructor(stub) {
    this[STUB] = stub;
  }

  prepare(sql) {
    return new D1PreparedStatement(this[STUB], String(sql));
  }

  async batch(statements) {
    if (!Array.isArray(statements) || statements.length === 0) {
      throw new Error("D1_ERROR: batch() needs at least one statement.");
    }
    return send(this[STUB], statements.map(payload), false);
  }

  async exec(sql) {
    try {
      return await this[STUB].exec(sql);
    } catch (err) {
      throw wrapError(err);
    }
  }

  withSession(constraintOrBookmark = "first-unconstrained") {
    const bookmark =
      constraintOrBookmark === "first-unconstrained" || constraintOrBookmark === "first-primary"
        ? null
        : String(constraintOrBookmark);
    return new D1DatabaseSession(this[STUB], bookmark);
  }

  async dump() {
    throw new Error("D1_DUMP_ERROR: dump() is not supported; use wrangler d1 export.");
  }
}
`;
