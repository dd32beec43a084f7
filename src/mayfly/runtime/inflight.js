// Which tenant code runs on this shard: each request's or scheduled run's in-flight record and its
// start and end marks on stdout (tracked), and how long a version counts as running after its
// answer (leftRunning; the Linger entrypoint, by which a tenant's prelude says its waitUntil work
// ended or holds its version running for work started after its response).

import { WorkerEntrypoint } from "cloudflare:workers";

import { settings } from "./control.js";

// Tenant requests handed to a tenant and not answered yet, id -> {id, version_id, account_id,
// script, started_ms}: the supervisor reads them on every probe, and reads the same starts and
// ends as marks on stdout, which still tell it who was running once this process froze.
const inFlight = new Map();
const MAX_REPORTED = 256;
let requestCount = 0;

// The records the supervisor reads on a health probe: the newest MAX_REPORTED.
export function inFlightNow() {
  return [...inFlight.values()].slice(-MAX_REPORTED);
}

// The start mark is written right before the tenant's code runs (workerd writes console output
// synchronously), the end mark once its code stopped: when it answered, or, for a response that
// leaves the tenant's code running (`leftRunning`), once that ended; likewise a scheduled run.
export async function tracked(env, route, work) {
  const id = String(++requestCount);
  inFlight.set(id, {
    id,
    version_id: route.version_id,
    account_id: route.account_id,
    script: route.script,
    started_ms: Date.now(),
  });
  if (env.SHARD_MARK) console.log(`${env.SHARD_MARK} + ${id} ${route.version_id}`);
  const end = () => {
    inFlight.delete(id);
    if (env.SHARD_MARK) console.log(`${env.SHARD_MARK} - ${id}`);
  };
  let result;
  try {
    result = await work();
    return result;
  } finally {
    const running = result !== null && typeof result === "object" ? leftRunning.get(result) : undefined;
    if (running === undefined) end();
    else running.then(end, end);
  }
}

export function noop() {}

// Tenant code may run after its response: work it handed to waitUntil (tenant.js caps it and says
// so with LINGER_HEADER), a WebSocket's handlers while the socket is open, a streamed body's pull().
// response (or a scheduled run's outcome past its deadline) -> a promise settled once that code
// stopped: the version counts as running until then
// (its end mark waits), so a shard it freezes meanwhile is not blamed on its neighbours alone.
export const leftRunning = new WeakMap();
// token -> {versionId, resolve}: the waitUntil work of a response, until Linger.done(token).
const lingering = new Map();

// token -> {versionId, done}: a version held running by Linger.hold(token), until done(token).
const holds = new Map();

// Bound into each tenant's env as LINGER_BINDING (props: its version), taken by tenant.js's prelude
// before the tenant's modules run: the only way to end a version's wait is its own done(token).
export class Linger extends WorkerEntrypoint {
  done(token) {
    const key = String(token);
    const wait = lingering.get(key);
    if (wait !== undefined && wait.versionId === this.ctx.props.version) wait.resolve();
    const held = holds.get(key);
    if (held !== undefined && held.versionId === this.ctx.props.version) held.done = true;
  }

  // Work the tenant left when none of its requests counted as running any more (from a WebSocket's
  // or a stream's code after the response): the version runs (a start mark now) until done(token),
  // or the cap plus a margin. This invocation polls on its own timers (nothing of another
  // invocation's is resolved from here: outbound.js).
  hold(token) {
    const key = String(token);
    const { version, account_id, script } = this.ctx.props;
    if (holds.has(key) || lingering.has(key)) return;
    const held = { versionId: version, done: false };
    holds.set(key, held);
    const deadline = Date.now() + settings(this.env).waitUntilMs + 5000;
    const route = { version_id: version, account_id, script };
    this.ctx.waitUntil(
      tracked(this.env, route, async () => {
        while (!held.done && Date.now() < deadline) await timeElapsed(50);
        holds.delete(key);
      }),
    );
  }
}

// The waitUntil work a response left: ended by its done(token), or at the latest when the cap
// (plus a margin for the call to arrive) has passed.
export function waitUntilEnded(token, versionId, capMs) {
  let resolve;
  const ended = new Promise((r) => (resolve = r));
  const timer = setTimeout(resolve, capMs + 5000);
  lingering.set(token, { versionId, resolve });
  return ended.then(() => {
    clearTimeout(timer);
    lingering.delete(token);
  });
}

export function timeElapsed(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
