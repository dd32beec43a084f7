// The Admin entrypoint, which the supervisor reaches through the shard's private admin socket:
// health probes (which also forget idle hosts), route invalidations, the hot set and a replacement
// shard's preload, and cron triggers (runScheduled).

import { WorkerEntrypoint } from "cloudflare:workers";

import { settings } from "./control.js";
import { inFlightNow, leftRunning, noop, timeElapsed, tracked } from "./inflight.js";
import { loaded, tenantFor } from "./loader.js";
import { outboundUse } from "./outbound.js";
import { forgetIdle, hotSet, invalidate, lastUsed, normalizeHost, pushed, resolveRoute, routes, used } from "./routes.js";

const PRELOAD_CONCURRENCY = 8;

export class Admin extends WorkerEntrypoint {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") {
      forgetIdle(this.env);
      const running = inFlightNow();
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
