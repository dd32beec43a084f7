// Outbound: every tenant's globalOutbound (its fetch() to the internet and its connect() from
// cloudflare:sockets). It forwards to PUBLIC_NET (the network service that reaches public
// addresses only) within bounds a tenant cannot step around, because the isolate has no other way
// out: per version and per shard, at most `outboundConnections` subrequests are open at once (a
// response body counts until it is read, cancelled or fails; further requests wait, first come
// first served, as Cloudflare's "simultaneous open connections") and at most `subrequests` are open
// or waiting at once; one more fails with Cloudflare's error text "Too many subrequests.". The
// isolate is shared by every request of its version on this shard, so the bounds are per version
// and shard, not per invocation (workerd tells this entrypoint nothing about which of the tenant's
// requests a subrequest belongs to). See docs/dataplane.md, "Outbound limits".
//
// A Worker that makes no subrequest never reaches this code: its cost is one more entrypoint stub
// per loaded isolate.

import { WorkerEntrypoint } from "cloudflare:workers";

export const TOO_MANY_SUBREQUESTS = "Too many subrequests.";
// Defaults when SETTINGS does not name them (config.py always does).
const SUBREQUESTS = 1000;
const CONNECTIONS = 64;

// version id -> {open: Set of leases {at}, waiting: [{at, grant}]}: present while the version has
// a subrequest open or waiting on this shard.
const versions = new Map();

export class Outbound extends WorkerEntrypoint {
  async fetch(request) {
    const version = this.ctx.props.version;
    const release = await acquire(this.env, version);
    let response;
    try {
      response = await this.env.PUBLIC_NET.fetch(request);
    } catch (err) {
      release();
      throw err;
    }
    if (response.body === null || response.webSocket) {
      release();
      return response;
    }
    // The connection is open until the tenant has read (or dropped) the body: a native pipe, no
    // JavaScript per chunk.
    const { readable, writable } = new IdentityTransformStream();
    this.ctx.waitUntil(
      response.body
        .pipeTo(writable)
        .catch(() => {})
        .finally(release),
    );
    return new Response(readable, response);
  }

  // The tenant's connect() (cloudflare:sockets) reaches here with its socket; `opened` names the
  // address it asked for (and has already resolved on the tenant's side). The connection is open
  // until both directions ended. A refusal (the bound, the network's rules) errors the tenant's socket:
  // its reads and writes fail with the reason instead of waiting for ever.
  async connect(socket) {
    let release = null;
    try {
      const { localAddress } = await socket.opened;
      release = await acquire(this.env, this.ctx.props.version);
      const upstream = this.env.PUBLIC_NET.connect(localAddress, { secureTransport: socket.secureTransport });
      await upstream.opened;
      await Promise.all([socket.readable.pipeTo(upstream.writable), upstream.readable.pipeTo(socket.writable)]);
    } catch (err) {
      // The slot first: the tenant's side may take its time to notice.
      release?.();
      release = null;
      for (const end of [socket.writable.abort(err), socket.readable.cancel(err), socket.close()]) {
        end.catch(() => {});
      }
    } finally {
      release?.();
    }
  }
}

// Resolves to a release function once the version may open one more connection; throws
// TOO_MANY_SUBREQUESTS when it already has `subrequests` open or waiting. A subrequest lives at most
// the request's deadline plus its waitUntil time: a lease older than that belonged to an invocation
// workerd cancelled (its `finally` never ran) and is taken back when the version is at its bound.
function acquire(env, version) {
  const settings = env.SETTINGS;
  const subrequests = settings.subrequests ?? SUBREQUESTS;
  const connections = settings.outboundConnections ?? CONNECTIONS;
  let state = versions.get(version);
  if (state === undefined) {
    state = { open: new Set(), waiting: [] };
    versions.set(version, state);
  }
  const now = Date.now();
  if (state.open.size >= connections) {
    const before = now - holdMs(settings);
    for (const lease of state.open) if (lease.at < before) state.open.delete(lease);
    state.waiting = state.waiting.filter((waiter) => waiter.at >= before);
    while (state.open.size < connections && state.waiting.length > 0) state.waiting.shift().grant();
  }
  if (state.open.size + state.waiting.length >= subrequests) {
    if (state.open.size === 0 && state.waiting.length === 0) versions.delete(version);
    return Promise.reject(new Error(TOO_MANY_SUBREQUESTS));
  }
  if (state.open.size < connections) return Promise.resolve(lease(state, version, now));
  // Another request's release resolves this promise: the timer keeps workerd from taking this
  // request for hung (nothing of its own pending) while it waits.
  const timer = setTimeout(() => {}, holdMs(settings));
  return new Promise((resolve) =>
    state.waiting.push({ at: now, grant: () => resolve(lease(state, version, Date.now())) }),
  ).then((release) => {
    clearTimeout(timer);
    return release;
  });
}

// How long a subrequest can live: its invocation's deadline and waitUntil time, and a second.
function holdMs(settings) {
  return (settings.requestTimeoutMs ?? 30000) + (settings.waitUntilMs ?? 30000) + 1000;
}

// Takes a slot now (a waiter's slot is taken when it is granted, even if its caller is gone).
function lease(state, version, at) {
  const held = { at };
  state.open.add(held);
  return () => {
    if (!state.open.delete(held)) return;
    const next = state.waiting.shift();
    if (next !== undefined) next.grant();
    else if (state.open.size === 0) versions.delete(version);
  };
}
