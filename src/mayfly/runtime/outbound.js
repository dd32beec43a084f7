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
//
// A waiter is never woken by resolving its promise from the releasing invocation: workerd runs such
// a cross-request continuation, but a subrequest it starts may never settle (measured: under a
// flood, two slots handed over that way each held a fetch() that never ended, and every later
// subrequest of the version waited until the tenant's deadline). Instead a release hands its slot
// to the first waiter still polling, and each waiter polls on its own timers, the more often the
// nearer it is to the head of the queue.
function acquire(env, version) {
  const settings = env.SETTINGS;
  const subrequests = settings.subrequests ?? SUBREQUESTS;
  const connections = settings.outboundConnections ?? CONNECTIONS;
  let state = versions.get(version);
  if (state === undefined) {
    state = { open: new Set(), waiting: [], tickets: 0, served: 0 };
    versions.set(version, state);
  }
  const now = Date.now();
  if (state.open.size >= connections) {
    reclaim(state, now - holdMs(settings), now - GONE_MS);
    while (state.open.size < connections && state.waiting.length > 0) handOver(state, version);
  }
  if (state.open.size + state.waiting.length >= subrequests) {
    if (state.open.size === 0 && state.waiting.length === 0) versions.delete(version);
    return Promise.reject(new Error(TOO_MANY_SUBREQUESTS));
  }
  if (state.open.size < connections && state.waiting.length === 0) {
    return Promise.resolve(lease(state, version, now));
  }
  const waiter = { at: now, seen: now, ticket: state.tickets++, release: null, skipped: false };
  state.waiting.push(waiter);
  return waitForSlot(state, waiter, holdMs(settings));
}

// A waiter not seen polling for this long is gone (its invocation was cancelled): it is skipped,
// and a slot handed to it that it never took is taken back.
const GONE_MS = 2000;
// The longest a waiter sleeps between two looks at its slot.
const MAX_POLL_MS = 250;

async function waitForSlot(state, waiter, limitMs) {
  while (waiter.release === null) {
    if (Date.now() - waiter.at > limitMs) {
      const index = state.waiting.indexOf(waiter);
      if (index !== -1) state.waiting.splice(index, 1);
      throw new Error(TOO_MANY_SUBREQUESTS);
    }
    // One millisecond per waiter ahead in the queue: a waiter far back cannot be next, and 1,000
    // waiters polling at the head's rate would cost the shard more than the subrequests themselves.
    const ahead = Math.max(0, waiter.ticket - state.served);
    await new Promise((resolve) => setTimeout(resolve, Math.min(1 + ahead, MAX_POLL_MS)));
    waiter.seen = Date.now();
    // Taken for gone while the shard was too busy to run its timer: back to the head.
    if (waiter.skipped && waiter.release === null) {
      waiter.skipped = false;
      state.waiting.unshift(waiter);
    }
  }
  waiter.release.held.taken = true;
  return waiter.release;
}

// Takes back leases of invocations workerd cancelled, and slots handed to waiters that are gone.
function reclaim(state, before, goneBefore) {
  for (const held of state.open) {
    if (held.at < before || (held.waiter !== undefined && !held.taken && held.waiter.seen < goneBefore)) {
      state.open.delete(held);
    }
  }
  state.waiting = state.waiting.filter((waiter) => {
    waiter.skipped = waiter.at < before || waiter.seen < goneBefore;
    return !waiter.skipped;
  });
}

// How long a subrequest can live: its invocation's deadline and waitUntil time, and a second.
function holdMs(settings) {
  return (settings.requestTimeoutMs ?? 30000) + (settings.waitUntilMs ?? 30000) + 1000;
}

// Takes a slot now, for the caller or for a waiter (who takes it on its next look).
function lease(state, version, at, waiter) {
  const held = { at, waiter, taken: waiter === undefined };
  state.open.add(held);
  const release = () => {
    if (!state.open.delete(held)) return;
    handOver(state, version);
    if (state.open.size === 0 && state.waiting.length === 0) versions.delete(version);
  };
  release.held = held;
  return release;
}

// Gives a freed slot to the first waiter still polling.
function handOver(state, version) {
  const goneBefore = Date.now() - GONE_MS;
  while (state.waiting.length > 0) {
    const next = state.waiting.shift();
    state.served = next.ticket + 1;
    if (next.seen < goneBefore) {
      next.skipped = true;
      continue;
    }
    next.release = lease(state, version, Date.now(), next);
    return;
  }
}
