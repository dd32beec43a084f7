// Tail events of tenants someone is tailing (`wrangler tail`, `mayfly tail`).
//
// The dispatcher loads a tailed Worker under a second loader key with
// `tails: [ctx.exports.TailSink({props: {account_id, script, version_id}})]` (loader.js); others
// pay nothing. workerd hands `tail()` the trace items of each finished request; they become the plain
// JSON wrangler reads (spec §5.12) and are batched to the control plane, which fans them out to the
// open sessions: one POST per Worker every FLUSH_MS, or sooner once MAX_BATCH events wait
// (unbatched, one POST per request cost 0.12× throughput; workerd-facts §1).

import { WorkerEntrypoint } from "cloudflare:workers";

const SECRET_HEADER = "x-mayfly-internal-secret";
const FLUSH_MS = 100;
const MAX_BATCH = 100;
// Logs are live and best effort: beyond this many waiting events (control plane slow or down),
// new ones are dropped rather than held.
const MAX_WAITING = 2000;
const MAX_TEXT = 64 * 1024;

// "account\nscript" -> {account_id, script, events}
let waiting = new Map();
let waitingCount = 0;
// When the pending flush was scheduled (0: none). A flush whose invocation died never clears it,
// so an old one counts as none.
let flushScheduledAt = 0;

export class TailSink extends WorkerEntrypoint {
  async tail(items) {
    const { account_id, script, version_id } = this.ctx.props;
    const key = `${account_id}\n${script}`;
    let batch = waiting.get(key);
    if (batch === undefined) {
      batch = { account_id, script, events: [] };
      waiting.set(key, batch);
    }
    for (const item of items) {
      if (waitingCount >= MAX_WAITING) break;
      batch.events.push(traceEvent(item, version_id));
      waitingCount += 1;
    }
    if (waitingCount >= MAX_BATCH) {
      this.ctx.waitUntil(flush(this.env));
    } else if (Date.now() - flushScheduledAt > 10 * FLUSH_MS) {
      const scheduledAt = (flushScheduledAt = Date.now());
      this.ctx.waitUntil(
        scheduler.wait(FLUSH_MS).then(() => {
          if (flushScheduledAt === scheduledAt) flushScheduledAt = 0;
          return flush(this.env);
        }),
      );
    }
  }
}

async function flush(env) {
  const batches = [...waiting.values()].filter((batch) => batch.events.length > 0);
  waiting = new Map();
  waitingCount = 0;
  await Promise.all(batches.map((batch) => post(env, batch)));
}

async function post(env, batch) {
  try {
    const response = await env.CONTROL_PLANE.fetch("http://control-plane/internal/v1/tail-events", {
      method: "POST",
      headers: { [SECRET_HEADER]: env.INTERNAL_SECRET, "content-type": "application/json" },
      body: JSON.stringify(batch),
      signal: AbortSignal.timeout(env.SETTINGS.controlPlaneTimeoutMs),
    });
    await response.body?.cancel();
  } catch {
    // The control plane is unreachable: these events are lost, as a live log may be.
  }
}

// A trace item (workerd's TraceItem: getters, not own properties) as plain JSON.
function traceEvent(item, versionId) {
  const event = {
    outcome: item.outcome ?? "unknown",
    eventTimestamp: item.eventTimestamp ?? Date.now(),
    logs: (item.logs ?? []).map((log) => ({
      level: log.level,
      message: plainArray(log.message),
      timestamp: log.timestamp,
    })),
    exceptions: (item.exceptions ?? []).map((exception) => {
      const plain = { name: String(exception.name), message: String(exception.message) };
      if (exception.stack) plain.stack = String(exception.stack);
      if (exception.timestamp !== undefined) plain.timestamp = exception.timestamp;
      return plain;
    }),
    event: eventInfo(item.event),
    scriptVersion: item.scriptVersion?.id ? plainValue(item.scriptVersion) : { id: versionId },
  };
  if (item.truncated) event.truncated = true;
  return event;
}

function eventInfo(info) {
  if (info === null || info === undefined) return null;
  if (info.request !== undefined) {
    const request = info.request;
    return {
      request: {
        url: request.url,
        method: request.method,
        headers: plainValue(request.headers) ?? {},
        cf: plainValue(request.cf) ?? {},
      },
      ...(info.response ? { response: { status: info.response.status } } : {}),
    };
  }
  if (info.cron !== undefined) {
    // A cron trigger, in the shape wrangler tail prints.
    return { cron: info.cron, scheduledTime: Number(info.scheduledTime) };
  }
  // Other event kinds (queue, rpc, ...): their own properties, as JSON has them.
  return plainValue(info);
}

function plainArray(values) {
  return Array.isArray(values) ? values.map(plainValue) : [plainValue(values)];
}

// Anything a tenant logs, as JSON: values JSON cannot carry become their string form.
function plainValue(value) {
  if (value === undefined) return null;
  try {
    const text = JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
    if (text === undefined) return String(value);
    return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + "…" : JSON.parse(text);
  } catch {
    return String(value);
  }
}
