// The dispatcher Worker: one per shard. It maps the Host header to a tenant's version through the
// control plane's internal API, loads that version with the Worker Loader (one isolate per version
// id) and forwards the request. The supervisor reaches the `Admin` entrypoint through the shard's
// private admin socket for health probes and route invalidations. The entrypoints handed to tenants
// live in their own modules and are re-exported here (ctx.exports only sees the main module's):
// KV (kv.js) backs KV bindings, TailSink (tail.js) receives the trace items of tailed Workers,
// AssetsBinding (assets.js) is an assets binding. A version with static assets is served through
// assets.js: Cloudflare's router and asset-worker decide what the Worker sees.
//
// Bindings (rendered by mayfly/runtime/config.py):
//   LOADER           Worker Loader
//   CONTROL_PLANE    external service: the control plane's internal listener
//   INTERNAL_SECRET  the internal API's per-boot secret (from the shard's environment)
//   PUBLIC_NET       network service that reaches public addresses only
//   SETTINGS         {requestTimeoutMs, routeTtlMs, staleRouteMs, controlPlaneTimeoutMs, subrequests,
//                    outboundConnections, accountOutboundConnections, shardOutboundConnections, ...}
//   SHARD_MARK       per-shard token that starts the request marks on stdout (runtime/shard.py)

import { WorkerEntrypoint } from "cloudflare:workers";

import { assetsBindingEnv, knownSite, rememberSite, serveSite } from "./assets.js";
import { withClientMetadata } from "./metadata.js";
import { LINGER_BINDING, LINGER_HEADER, THREW_HEADER, withPrelude } from "./tenant.js";
import { outboundUse } from "./outbound.js";
import { R2_MARKER, withR2Client } from "./r2.js";
import { serveServicesWith } from "./services.js";

export { KV } from "./kv.js";
export { D1 } from "./d1.js";
export { TailSink } from "./tail.js";
export { AssetsBinding } from "./assets.js";
export { R2 } from "./r2.js";
export { ServiceBinding } from "./services.js";
export { Outbound } from "./outbound.js";

const SECRET_HEADER = "x-mayfly-internal-secret";
// Any Host header makes a cache entry: bound them (the oldest answer goes first).
const MAX_ROUTES = 10000;

// host -> {route, at}: answers of the control plane, fresh for routeTtlMs, usable up to
// staleRouteMs when the control plane fails.
const routes = new Map();
// host -> Promise<route>, version id -> Promise<code> or Promise<{site, version}>: one lookup in
// flight per key.
const routeLookups = new Map();
const codeLookups = new Map();
const siteLookups = new Map();
// version id -> its code, from a route answer (see prefetch).
const prefetched = new Map();
const MAX_PREFETCHED = 256;
// host -> {route, seq, at}: what the control plane pushed for the host (POST /invalidate: with every
// invalidation, and a snapshot of the live routes when this shard started). Authoritative, with no
// TTL: every change to a route is followed by such a message, acknowledged before the API answers.
// `route` null: the host changed and its route was not pushed (ask). `seq` orders the messages (the
// data plane numbers each before the control plane reads what it pushes): one older than what a
// host has is ignored; a host without an entry has `pushedFloor`.
const pushed = new Map();
const MAX_PUSHED = 50000;
let pushedFloor = 0;
let pushedMax = 0; // the highest number seen
// version id -> {version, bytes}: code pushed with a route, until a request here loads it; at most
// MAX_PUSHED_CODE_BYTES (the oldest goes first: its first request asks for it).
const pushedCode = new Map();
const MAX_PUSHED_CODE_BYTES = 64 * 1024 * 1024;
let pushedCodeBytes = 0;
// Loader keys whose isolate the loader already holds (the loader never evicts them): a version id,
// or `${versionId}:tail` for the same version loaded with a tail while someone tails it.
const loaded = new Set();
// Bumped by every invalidation: a lookup that started before it must not fill the cache.
let epoch = 0;
// host -> when a request for it last reached a Worker here, the most recent last: the hot set the
// supervisor preloads into this shard's replacement when it recycles it (GET /hot, POST /preload).
const lastUsed = new Map();
const PRELOAD_CONCURRENCY = 8;
// Tenant requests handed to a tenant and not answered yet, id -> {id, version_id, account_id,
// script, started_ms}: the supervisor reads them on every probe, and reads the same starts and
// ends as marks on stdout, which still tell it who was running once this process froze.
const inFlight = new Map();
const MAX_REPORTED = 256;
let requestCount = 0;

export default {
  async fetch(request, env, ctx) {
    const host = hostOf(request);
    let route;
    try {
      route = await resolveRoute(env, host);
    } catch (err) {
      return platformError(503, "unavailable", "The platform cannot reach its control plane; try again shortly.", {
        "retry-after": "1",
      });
    }
    if (route.status === "expired") {
      return platformError(410, "expired", route.message || "This temporary deployment expired.");
    }
    if (route.status === "moved") {
      // Claimed into another account: the message names the new URL. No redirect: the old URL
      // is gone for good, and following it silently would hide that from the caller.
      return platformError(410, "moved", route.message || "This Worker moved.");
    }
    if (route.status === "quarantined" || route.status === "suspended") {
      return unavailable(route);
    }
    if (route.status !== "ok") {
      return platformError(404, route.status, route.message || `No Worker is served at ${host}.`);
    }
    if (route.expires_at_ms !== null && route.expires_at_ms !== undefined && Date.now() >= route.expires_at_ms) {
      return platformError(410, "expired", "This temporary deployment expired.");
    }

    used(host, Date.now());
    let site;
    let worker = null;
    try {
      ({ site, worker } = await tenantFor(env, ctx, route.version_id, route.tail === true));
    } catch (err) {
      return platformError(503, "unavailable", "The platform could not load this Worker; try again shortly.", {
        "retry-after": "1",
      });
    }
    const run = (req) =>
      tracked(env, route, () => runWithDeadline(worker, req, settings(env), ctx, route.version_id));
    const tenantRequest = withClientMetadata(request, settings(env).trustedProxies);
    return site.assets ? serveSite(env, ctx, site, tenantRequest, worker && run) : run(tenantRequest);
  },
};

export class Admin extends WorkerEntrypoint {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") {
      forgetIdle(this.env);
      const running = [...inFlight.values()].slice(-MAX_REPORTED);
      return Response.json({
        ok: true,
        routes: routes.size,
        pushed: pushed.size,
        loaded: loaded.size,
        hot: lastUsed.size,
        inflight: running,
        outbound: outboundUse(),
      });
    }
    if (pathname === "/invalidate" && request.method === "POST") {
      // {hosts, seq?, routes?: {host: route answer}, complete?}: see `pushed`.
      const { hosts, seq, routes: answers, complete } = await request.json();
      if (!Array.isArray(hosts)) {
        return Response.json({ error: "expected {hosts: [...]}" }, { status: 400 });
      }
      const order = Number.isSafeInteger(seq) ? seq : null;
      invalidate(hosts, order, answers && typeof answers === "object" ? answers : {}, complete === true);
      return Response.json({ ok: true, invalidated: hosts.length });
    }
    if (pathname === "/hot") {
      return Response.json(hotSet(new URL(request.url).searchParams));
    }
    if (pathname === "/preload" && request.method === "POST") {
      const { hosts, ages_ms: ages } = await request.json();
      if (!Array.isArray(hosts)) {
        return Response.json({ error: "expected {hosts: [...]}" }, { status: 400 });
      }
      return Response.json(await preload(this.env, this.ctx, hosts, Array.isArray(ages) ? ages : []));
    }
    if (pathname === "/scheduled" && request.method === "POST") {
      const { host, cron, scheduledTime } = await request.json();
      if (typeof host !== "string" || typeof cron !== "string" || !Number.isFinite(scheduledTime)) {
        return Response.json({ error: "expected {host, cron, scheduledTime}" }, { status: 400 });
      }
      return Response.json(await runScheduled(this.env, this.ctx, normalizeHost(host), cron, scheduledTime));
    }
    return Response.json({ error: "not found" }, { status: 404 });
  }
}

// A cron trigger (the control plane's scheduler, through the supervisor): the host's Worker is
// resolved and loaded as for a request (an expired, moved, quarantined or deleted one does not
// run), and its scheduled() handler runs under the same marks, in-flight record and wall-clock
// limit as a request, so a runaway handler is caught and attributed like one. A tailed Worker's
// run reaches its tails as a scheduled event ({cron, scheduledTime}).
async function runScheduled(env, ctx, host, cron, scheduledTime) {
  let route;
  try {
    route = await resolveRoute(env, host);
  } catch (err) {
    return { outcome: "unavailable" };
  }
  const expired =
    route.expires_at_ms !== null && route.expires_at_ms !== undefined && Date.now() >= route.expires_at_ms;
  if (route.status !== "ok" || expired) {
    return { outcome: "skipped", status: expired ? "expired" : route.status };
  }
  let worker;
  try {
    ({ worker } = await tenantFor(env, ctx, route.version_id, route.tail === true));
  } catch (err) {
    return { outcome: "unavailable" };
  }
  if (!worker) return { outcome: "skipped", status: "assets-only" };
  const { requestTimeoutMs: timeoutMs, waitUntilMs } = settings(env);
  return tracked(env, route, async () => {
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      const event = worker.getEntrypoint().scheduled({ cron, scheduledTime });
      const result = await Promise.race([event, deadline]);
      if (result === null) {
        // workerd settles the event once its waitUntil work ended too (capped by tenant.js): the
        // version runs until then, or for the cap after the deadline.
        const timedOut = { outcome: "timeout", version_id: route.version_id };
        const running = Promise.race([event.then(noop, noop), timeElapsed(waitUntilMs)]);
        ctx.waitUntil(running);
        leftRunning.set(timedOut, running);
        return timedOut;
      }
      return { outcome: result?.outcome ?? "ok", version_id: route.version_id };
    } catch (err) {
      return { outcome: "exception", version_id: route.version_id };
    } finally {
      clearTimeout(timer);
    }
  });
}

// The start mark is written right before the tenant's code runs (workerd writes console output
// synchronously), the end mark once its code stopped: when it answered, or, for a response that
// leaves the tenant's code running (`leftRunning`), once that ended; likewise a scheduled run.
async function tracked(env, route, work) {
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

function noop() {}

// Tenant code may run after its response: work it handed to waitUntil (tenant.js caps it and says
// so with LINGER_HEADER), a WebSocket's handlers while the socket is open, a streamed body's pull().
// response (or a scheduled run's outcome past its deadline) -> a promise settled once that code
// stopped: the version counts as running until then
// (its end mark waits), so a shard it freezes meanwhile is not blamed on its neighbours alone.
const leftRunning = new WeakMap();
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
function waitUntilEnded(token, versionId, capMs) {
  let resolve;
  const ended = new Promise((r) => (resolve = r));
  const timer = setTimeout(resolve, capMs + 5000);
  lingering.set(token, { versionId, resolve });
  return ended.then(() => {
    clearTimeout(timer);
    lingering.delete(token);
  });
}

function timeElapsed(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A WebSocket's tenant end, proxied through a pair of the dispatcher's (JavaScript per message for
// WebSocket users only): settled once either end closed, when both are closed.
function proxiedSocket(response) {
  const tenant = response.webSocket;
  const [client, server] = Object.values(new WebSocketPair());
  tenant.accept();
  server.accept();
  const closed = new Promise((resolve) => {
    const end = (socket, code, reason) => {
      try {
        socket.close(code, reason);
      } catch {
        try {
          socket.close();
        } catch {
          // already closed
        }
      }
    };
    const join = (from, to) => {
      from.addEventListener("message", (event) => {
        try {
          to.send(event.data);
        } catch {
          // the other end is closing
        }
      });
      from.addEventListener("close", (event) => {
        end(to, event.code, event.reason);
        end(from, event.code, event.reason);
        resolve();
      });
      from.addEventListener("error", () => {
        end(to, 1011, "WebSocket error");
        end(from, 1011, "WebSocket error");
        resolve();
      });
    };
    join(tenant, server);
    join(server, tenant);
  });
  const proxied = new Response(null, { status: 101, statusText: response.statusText, headers: response.headers, webSocket: client });
  return [proxied, closed];
}

function settings(env) {
  return env.SETTINGS;
}

function used(host, at) {
  lastUsed.delete(host);
  lastUsed.set(host, at);
  if (lastUsed.size > MAX_ROUTES) lastUsed.delete(lastUsed.keys().next().value);
}

// Route states that concern a Worker that is there: kept in `pushed` until the next change.
const LIVE_STATUSES = new Set(["ok", "quarantined", "suspended"]);
const FORGET_EVERY_MS = 60_000;
let lastForget = 0;

// What the shard holds per host for hosts nobody asked for within staleRouteMs (run from the
// supervisor's health probes): cached answers too old to use even when the control plane fails,
// hot-set entries (a replacement preloads only hosts served within its minute), and pushed answers
// that serve no Worker (expired, moved, unknown, or not pushed), so that expired temporary accounts
// leave nothing here; a later request for such a host asks. Each map is in the order of its
// entries' `at` (updates delete then set), so the scan stops at the first young entry. Forgetting a
// pushed host's order raises everyone's, as the MAX_PUSHED eviction does.
function forgetIdle(env) {
  const now = Date.now();
  const { staleRouteMs } = settings(env);
  if (now - lastForget < Math.min(staleRouteMs, FORGET_EVERY_MS)) return;
  lastForget = now;
  const idle = now - staleRouteMs;
  for (const [host, entry] of routes) {
    if (entry.at > idle) break;
    routes.delete(host);
  }
  for (const [host, at] of lastUsed) {
    if (at > idle) break;
    lastUsed.delete(host);
  }
  for (const [host, entry] of pushed) {
    if (entry.at > idle) break;
    if (entry.route !== null && LIVE_STATUSES.has(entry.route.status)) continue;
    pushed.delete(host);
    if (entry.seq > pushedFloor) pushedFloor = entry.seq;
  }
}

// The hosts served within `seconds`, the most recent first, at most `limit`; with their ages, so
// that a replacement does not make a host younger than it is.
function hotSet(params) {
  const windowMs = Number(params.get("seconds") ?? "60") * 1000;
  const limit = Number(params.get("limit") ?? "1000");
  const now = Date.now();
  const hosts = [];
  const ages = [];
  for (const [host, at] of [...lastUsed].reverse()) {
    if (hosts.length >= limit || now - at > windowMs) break;
    hosts.push(host);
    ages.push(now - at);
  }
  return { hosts, ages_ms: ages };
}

// Resolves and loads each host's Worker (its isolate is created by LOADER.get) without running any
// tenant code. A host that fails to load is skipped: its first request will try again.
async function preload(env, ctx, hosts, ages) {
  const now = Date.now();
  let next = 0;
  let loadedNow = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const index = next++;
      const host = normalizeHost(hosts[index]);
      try {
        const route = await resolveRoute(env, host);
        if (route.status !== "ok") continue;
        const before = loaded.size;
        await tenantFor(env, ctx, route.version_id, route.tail === true);
        loadedNow += loaded.size - before;
        if (!lastUsed.has(host)) used(host, now - (Number(ages[index]) || 0));
      } catch (err) {
        // skipped
      }
    }
  };
  await Promise.all(Array.from({ length: PRELOAD_CONCURRENCY }, worker));
  // Hosts were added oldest-last by the concurrent loaders: put them back in order of use.
  const order = [...lastUsed].sort((a, b) => a[1] - b[1]);
  lastUsed.clear();
  for (const [host, at] of order) lastUsed.set(host, at);
  return { ok: true, loaded: loadedNow };
}

function normalizeHost(host) {
  return String(host).trim().toLowerCase().replace(/\.$/, "");
}

function hostOf(request) {
  return normalizeHost(new URL(request.url).hostname);
}

// Drops the hosts' cached routes and takes what was pushed for them. Without `seq` (not from the
// data plane) only a message numbered after every one seen so far is believed for these hosts.
// `complete`: the answers are every live route as of `seq` (a snapshot): a host missing has none.
function invalidate(hosts, seq = null, answers = {}, complete = false) {
  epoch += 1;
  if (seq !== null && seq > pushedMax) pushedMax = seq;
  for (const host of hosts) {
    const key = normalizeHost(host);
    routes.delete(key);
    routeLookups.delete(key);
    const order = seq ?? pushedMax;
    if (seq !== null && order <= (pushed.get(key)?.seq ?? pushedFloor)) continue; // older
    const answer = seq !== null && Object.hasOwn(answers, host) ? answers[host] : null;
    let route = null;
    if (answer && typeof answer === "object" && typeof answer.status === "string") {
      const { version, ...rest } = answer;
      route = rest;
      if (version && route.status === "ok" && version.version_id === route.version_id) {
        keepPushedCode(route.version_id, version);
      }
    }
    pushed.delete(key);
    pushed.set(key, { route, seq: order, at: Date.now() });
    if (pushed.size > MAX_PUSHED) {
      const [oldest, entry] = pushed.entries().next().value;
      pushed.delete(oldest);
      // Forgetting a host's order must not let an older message in: raise everyone's.
      if (entry.seq > pushedFloor) pushedFloor = entry.seq;
    }
  }
  if (complete && seq !== null && seq > pushedFloor) {
    pushedFloor = seq;
    for (const [host, entry] of pushed) {
      if (entry.seq < seq) pushed.delete(host);
    }
  }
}

function keepPushedCode(versionId, version) {
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

// A Worker that took a shard down answers 503 until its quarantine ends (services/workers/
// quarantine.py); a suspended account's Workers answer 503 until the operator resumes it, and the
// route is asked again after the `quarantined_until_ms` the control plane gave.
function unavailable(route) {
  const seconds = Math.max(1, Math.ceil((route.quarantined_until_ms - Date.now()) / 1000));
  const fallback = route.status === "suspended" ? "This Worker's account is suspended." : "This Worker is quarantined.";
  return platformError(503, route.status, `${route.message || fallback} Try again in ${seconds} s.`, {
    "retry-after": String(seconds),
  });
}

// A cached quarantine or suspension is never served past its end, fresh or stale.
function usable(entry, maxAgeMs) {
  const now = Date.now();
  if (now - entry.at >= maxAgeMs) return false;
  const { status, quarantined_until_ms: until } = entry.route;
  return (status !== "quarantined" && status !== "suspended") || now < until;
}

function platformError(status, kind, message, headers = {}) {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "x-mayfly-error": kind, ...headers },
  });
}

async function internalGet(env, path) {
  const response = await env.CONTROL_PLANE.fetch(`http://control-plane${path}`, {
    headers: { [SECRET_HEADER]: env.INTERNAL_SECRET },
    signal: AbortSignal.timeout(settings(env).controlPlaneTimeoutMs),
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`control plane answered ${response.status} for ${path}`);
  }
  return response.json();
}

// One lookup per key at a time. A follower whose shared lookup failed tries once on its own: the
// leader's request may have been cancelled, which cancels the lookup it started.
async function shared(inflight, key, lookup) {
  let pending = inflight.get(key);
  const leader = pending === undefined;
  if (leader) {
    pending = lookup();
    inflight.set(key, pending);
    const clear = () => {
      if (inflight.get(key) === pending) inflight.delete(key);
    };
    pending.then(clear, clear);
  }
  try {
    return await pending;
  } catch (err) {
    if (leader) throw err;
    return lookup();
  }
}

async function resolveRoute(env, host) {
  const mine = pushed.get(host);
  if (mine?.route && usable(mine, Infinity)) {
    return mine.route;
  }
  const { routeTtlMs, staleRouteMs } = settings(env);
  const cached = routes.get(host);
  if (cached && usable(cached, routeTtlMs)) {
    return cached.route;
  }
  try {
    return await shared(routeLookups, host, async () => {
      const started = epoch;
      // One round trip for a Worker never seen: the answer carries the code of the version it
      // routes to, unless it is the version this shard already has for the host.
      const have = cached ? `&have=${encodeURIComponent(cached.route.version_id ?? "")}` : "";
      const { version, ...route } = await internalGet(
        env,
        `/internal/v1/route?host=${encodeURIComponent(host)}&code=1${have}`,
      );
      if (version && route.status === "ok") prefetch(route.version_id, version);
      if (epoch === started) remember(host, route);
      return route;
    });
  } catch (err) {
    if (cached && usable(cached, staleRouteMs)) return cached.route;
    throw err;
  }
}

// Versions are immutable: code that came with a route answer is good until the request that asked
// for it takes it (a few at most are waiting at any time).
function prefetch(versionId, version) {
  prefetched.delete(versionId);
  prefetched.set(versionId, version);
  if (prefetched.size > MAX_PREFETCHED) prefetched.delete(prefetched.keys().next().value);
}

function takePrefetched(versionId) {
  const version = prefetched.get(versionId);
  prefetched.delete(versionId);
  return dropPushedCode(versionId) ?? version;
}

function remember(host, route) {
  routes.delete(host);
  if (routes.size >= MAX_ROUTES) routes.delete(routes.keys().next().value);
  routes.set(host, { route, at: Date.now() });
}

// A version's site (assets.js: {hasWorker, assets}) and its Worker (null for an assets-only one).
// The version is asked once: a new one's answer also makes its code.
async function tenantFor(env, ctx, versionId, tailed) {
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

// A service binding's target (services.js): the Worker a request to `host` would reach, loaded as
// for such a request; fetch() goes through its static assets unless a named entrypoint is bound.
serveServicesWith(async (env, ctx, host, props) => {
  const route = await resolveRoute(env, host);
  const expired = route.expires_at_ms !== null && route.expires_at_ms !== undefined && Date.now() >= route.expires_at_ms;
  if (route.status !== "ok" || expired) {
    throw new Error(`Service binding: the Worker ${props.service} is not available (${expired ? "expired" : route.status}).`);
  }
  const { site, worker } = await tenantFor(env, ctx, route.version_id, route.tail === true);
  const call = (request) => worker.getEntrypoint(props.entrypoint ?? undefined).fetch(request);
  const fetch = (request) =>
    site.assets && props.entrypoint === null ? serveSite(env, ctx, site, request, worker && call) : call(request);
  return { worker, fetch };
});

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

// The wall-clock limit covers the whole response: an asynchronous hang before the headers ends with
// 504, a body still streaming at the deadline is cut there (the client sees a truncated response).
// One timer per request: the deadline's signal aborts the call to the tenant and, later, the pipe
// its body goes through. A synchronous loop blocks this whole process: only the supervisor's probe
// can end that, by killing the shard.
async function runWithDeadline(worker, request, { requestTimeoutMs: timeoutMs, waitUntilMs }, ctx, versionId) {
  const deadline = AbortSignal.timeout(timeoutMs);
  let response;
  try {
    response = await worker.getEntrypoint().fetch(request, { signal: deadline });
  } catch (err) {
    if (deadline.aborted) {
      // Its code may still run (what it left to waitUntil ends within the cap: tenant.js).
      const timedOut = platformError(504, "timeout", `The Worker did not answer within ${timeoutMs / 1000} s.`);
      const running = timeElapsed(waitUntilMs);
      ctx.waitUntil(running);
      leftRunning.set(timedOut, running);
      return timedOut;
    }
    return platformError(500, "exception", "The Worker threw an exception.");
  }
  // Only responses that left work, and WebSocket ones, cost more than this header lookup.
  const token = response.headers.get(LINGER_HEADER);
  let running = token === null ? null : waitUntilEnded(token, versionId, waitUntilMs);
  if (running !== null) {
    if (response.headers.has(THREW_HEADER)) {
      response = platformError(500, "exception", "The Worker threw an exception.");
    } else {
      response = new Response(response.body, response);
      response.headers.delete(LINGER_HEADER);
    }
  }
  if (response.webSocket) {
    let closed;
    [response, closed] = proxiedSocket(response);
    running = running === null ? closed : Promise.all([running, closed]);
  }
  response = bodyWithDeadline(response, deadline, ctx);
  const streamed = leftRunning.get(response);
  if (running !== null) {
    running = streamed ? Promise.all([running, streamed]) : running;
    ctx.waitUntil(running); // this request's context (its timers, its end mark) lasts as long
    leftRunning.set(response, running);
  }
  return response;
}

// The body goes through a native pipe that the deadline aborts: no JavaScript runs per chunk.
function bodyWithDeadline(response, deadline, ctx) {
  if (response.body === null || response.webSocket) return response;
  const length = Number(response.headers.get("content-length"));
  const { readable, writable } =
    Number.isSafeInteger(length) && length >= 0 && response.headers.has("content-length")
      ? new FixedLengthStream(length)
      : new IdentityTransformStream();
  const piped = response.body.pipeTo(writable, { signal: deadline }).catch(() => {});
  ctx.waitUntil(piped);
  const forwarded = new Response(readable, response);
  leftRunning.set(forwarded, piped); // the tenant's pull() runs until the body ended
  return forwarded;
}
