// Which version serves a host: the control plane's answers cached per host (fresh for routeTtlMs,
// usable up to staleRouteMs when it fails), what it pushed (authoritative: POST /invalidate), the
// invalidations that drop them, the hot set (hosts served lately: a replacement shard preloads
// them) and forgetting hosts nobody asked for (resolveRoute, invalidate, forgetIdle).

import { internalGet, settings, shared } from "./control.js";
import { keepPushedCode, prefetch } from "./loader.js";

// Any Host header makes a cache entry: bound them (the oldest answer goes first).
const MAX_ROUTES = 10000;

// host -> {route, at}: answers of the control plane, fresh for routeTtlMs, usable up to
// staleRouteMs when the control plane fails.
export const routes = new Map();

// host -> Promise<route>: one lookup in flight per host.
const routeLookups = new Map();

// host -> {route, seq, at}: what the control plane pushed for the host (POST /invalidate: with every
// invalidation, and a snapshot of the live routes when this shard started). Authoritative, with no
// TTL: every change to a route is followed by such a message, acknowledged before the API answers.
// `route` null: the host changed and its route was not pushed (ask). `seq` orders the messages (the
// data plane numbers each before the control plane reads what it pushes): one older than what a
// host has is ignored; a host without an entry has `pushedFloor`.
export const pushed = new Map();
const MAX_PUSHED = 50000;
let pushedFloor = 0;
let pushedMax = 0; // the highest number seen

// Bumped by every invalidation: a lookup that started before it must not fill the cache.
let epoch = 0;

// host -> when a request for it last reached a Worker here, the most recent last: the hot set the
// supervisor preloads into this shard's replacement when it recycles it (GET /hot, POST /preload).
export const lastUsed = new Map();

export async function resolveRoute(env, host) {
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

// A cached quarantine or suspension is never served past its end, fresh or stale.
function usable(entry, maxAgeMs) {
  const now = Date.now();
  if (now - entry.at >= maxAgeMs) return false;
  const { status, quarantined_until_ms: until } = entry.route;
  return (status !== "quarantined" && status !== "suspended") || now < until;
}

function remember(host, route) {
  routes.delete(host);
  if (routes.size >= MAX_ROUTES) routes.delete(routes.keys().next().value);
  routes.set(host, { route, at: Date.now() });
}

// Drops the hosts' cached routes and takes what was pushed for them. Without `seq` (not from the
// data plane) only a message numbered after every one seen so far is believed for these hosts.
// `complete`: the answers are every live route as of `seq` (a snapshot): a host missing has none.
export function invalidate(hosts, seq = null, answers = {}, complete = false) {
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

export function used(host, at) {
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
export function forgetIdle(env) {
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
export function hotSet(params) {
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

export function normalizeHost(host) {
  return String(host).trim().toLowerCase().replace(/\.$/, "");
}

export function hostOf(request) {
  return normalizeHost(new URL(request.url).hostname);
}
