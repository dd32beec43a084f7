// Outbound: every tenant's globalOutbound (its fetch() to the internet and its connect() from
// cloudflare:sockets). It forwards to PUBLIC_NET (the network service that reaches public
// addresses only) within bounds a tenant cannot step around, because the isolate has no other way
// out. Connections open at once (a response body counts until it is read, cancelled or fails) are
// bounded three ways on a shard:
//   * per version, `outboundConnections` (as Cloudflare's "simultaneous open connections");
//   * per account, `accountOutboundConnections`, across all its versions (one account with many
//     Workers would otherwise hold `outboundConnections` × Workers descriptors);
//   * per shard, `shardOutboundConnections` (config.py derives it from the shard's descriptor
//     limit), shared fairly: the first half of it is first come first served, and once that is in
//     use an account gets one more connection only while it holds less than its fair share of the
//     other half (that half divided by the accounts with subrequests open or waiting here), so
//     many accounts of one attacker cannot take every connection of the shard from the others.
// A subrequest that may not open yet waits, first come first served within its version; at most
// `subrequests` are open or waiting per version, and one more fails with Cloudflare's error text
// "Too many subrequests.". The isolate is shared by every request of its version on this shard, so
// the bounds are per version and shard, not per invocation (workerd tells this entrypoint nothing
// about which of the tenant's requests a subrequest belongs to). The account comes from the props
// the dispatcher set (the control plane's version record), never from the tenant. See
// docs/dataplane.md, "Outbound limits".
//
// A Worker that makes no subrequest never reaches this code: its cost is one more entrypoint stub
// per loaded isolate.

import { WorkerEntrypoint } from "cloudflare:workers";

export const TOO_MANY_SUBREQUESTS = "Too many subrequests.";
// Defaults when SETTINGS does not name them (config.py always does).
const SUBREQUESTS = 1000;
const CONNECTIONS = 64;
const ACCOUNT_CONNECTIONS = 256;
const SHARD_CONNECTIONS = 32768;

// "account version" -> {key, version, account, open: Set of leases {at}, waiting: [waiter]}:
// present while the version has a subrequest open or waiting on this shard.
const versions = new Map();
// account id -> {id, open (its versions' open leases), versions (its entries in `versions`)}.
const accounts = new Map();
// Every open lease of the shard; `sweptAt`: the last look for leases of cancelled invocations.
const shard = { open: 0, sweptAt: 0 };

export class Outbound extends WorkerEntrypoint {
  async fetch(request) {
    const release = await acquire(this.env, this.ctx.props);
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
      release = await acquire(this.env, this.ctx.props);
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

// What the shard's tenants hold now, for the health answer: connections open (leases), subrequests
// waiting, accounts with either.
export function outboundUse() {
  let waiting = 0;
  for (const state of versions.values()) waiting += state.waiting.length;
  return { open: shard.open, waiting, accounts: accounts.size };
}

// The bounds, read from SETTINGS once (they are the shard's for its life).
let bounds = null;

function boundsOf(settings) {
  if (bounds === null) {
    const ceiling = settings.shardOutboundConnections || SHARD_CONNECTIONS;
    const shared = Math.floor(ceiling / 2);
    bounds = {
      subrequests: settings.subrequests ?? SUBREQUESTS,
      connections: settings.outboundConnections ?? CONNECTIONS,
      account: settings.accountOutboundConnections ?? ACCOUNT_CONNECTIONS,
      ceiling,
      // Below this many open on the shard, first come first served; above it, fair shares of
      // `shared`.
      firstCome: ceiling - shared,
      shared,
      hold: holdMs(settings),
    };
  }
  return bounds;
}

// Resolves to a release function once the version may open one more connection; throws
// TOO_MANY_SUBREQUESTS when it already has `subrequests` open or waiting. A subrequest lives at most
// the request's deadline plus its waitUntil time: a lease older than that belonged to an invocation
// workerd cancelled (its `finally` never ran) and is taken back when a bound is reached.
//
// A waiter is never woken by resolving its promise from the releasing invocation: workerd runs such
// a cross-request continuation, but a subrequest it starts may never settle (measured: under a
// flood, two slots handed over that way each held a fetch() that never ended, and every later
// subrequest of the version waited until the tenant's deadline). Instead a release hands its slot
// to the first waiter of its version still polling, when it is the version's own bound that holds
// that waiter back; and each waiter polls on its own timers, the more often the nearer it is to the
// head of its version's queue. A slot freed under its account's bound or the shard's fair shares
// is taken by the head of a queue, of any version, that looks next and may open (lease()).
function acquire(env, props) {
  const limits = boundsOf(env.SETTINGS);
  const account = props.account ?? "";
  let state = stateOf(account, props.version);
  const now = Date.now();
  if (!mayOpen(state, limits)) {
    if (state.open.size >= limits.connections) reclaim(state, now - limits.hold, now - GONE_MS);
    else {
      sweep(now, limits);
      // The sweep drops idle entries, this new one too.
      state = stateOf(account, props.version);
    }
    while (state.waiting.length > 0 && mayOpen(state, limits)) handOver(state);
  }
  if (state.open.size + state.waiting.length >= limits.subrequests) {
    forgetIfIdle(state);
    return Promise.reject(new Error(TOO_MANY_SUBREQUESTS));
  }
  if (state.waiting.length === 0 && mayOpen(state, limits)) {
    return Promise.resolve(lease(state, now));
  }
  const waiter = { at: now, seen: now, ticket: state.tickets++, release: null, skipped: false };
  state.waiting.push(waiter);
  return waitForSlot(state, waiter, limits);
}

// The version's entry (made, and counted in its account's, when it has none).
function stateOf(accountId, version) {
  const key = `${accountId} ${version}`;
  let state = versions.get(key);
  if (state === undefined) {
    let account = accounts.get(accountId);
    if (account === undefined) {
      account = { id: accountId, open: 0, versions: 0 };
      accounts.set(accountId, account);
    }
    account.versions++;
    state = { key, version, account, open: new Set(), waiting: [], tickets: 0, served: 0 };
    versions.set(key, state);
  }
  return state;
}

// Drops the version's entry once it has nothing open or waiting (and its account's, likewise).
function forgetIfIdle(state) {
  if (state.open.size > 0 || state.waiting.length > 0 || versions.get(state.key) !== state) return;
  versions.delete(state.key);
  const account = state.account;
  if (--account.versions === 0 && accounts.get(account.id) === account) accounts.delete(account.id);
}

// Whether the version may open one more connection now: its own bound, its account's, and the
// shard's (first come first served up to `firstCome`, then only below the account's fair share).
function mayOpen(state, limits) {
  const account = state.account;
  if (state.open.size >= limits.connections || account.open >= limits.account) return false;
  if (shard.open < limits.firstCome) return true;
  return shard.open < limits.ceiling && account.open < fairShare(limits);
}

function fairShare(limits) {
  return Math.max(1, Math.floor(limits.shared / Math.max(1, accounts.size)));
}

// A waiter not seen polling for this long is gone (its invocation was cancelled): it is skipped,
// and a slot handed to it that it never took is taken back.
const GONE_MS = 2000;
// The longest a waiter sleeps between two looks at its slot.
const MAX_POLL_MS = 250;
// The shortest time between two sweeps of every version for leases of cancelled invocations.
const SWEEP_MS = 1000;

async function waitForSlot(state, waiter, limits) {
  while (waiter.release === null) {
    if (Date.now() - waiter.at > limits.hold) {
      const index = state.waiting.indexOf(waiter);
      if (index !== -1) state.waiting.splice(index, 1);
      forgetIfIdle(state);
      throw new Error(TOO_MANY_SUBREQUESTS);
    }
    // One millisecond per waiter ahead in the queue: a waiter far back cannot be next, and 1,000
    // waiters polling at the head's rate would cost the shard more than the subrequests themselves.
    // A version held back by its account's or the shard's bound waits on other versions' releases:
    // one more millisecond per version with subrequests on the shard, so that hundreds of held-back
    // queue heads do not each look every millisecond.
    const ahead = Math.max(0, waiter.ticket - state.served);
    const heldBack = state.open.size < limits.connections ? versions.size : 0;
    await new Promise((resolve) => setTimeout(resolve, Math.min(1 + ahead + heldBack, MAX_POLL_MS)));
    const now = Date.now();
    waiter.seen = now;
    // Taken for gone while the shard was too busy to run its timer: back to the head.
    if (waiter.skipped && waiter.release === null) {
      waiter.skipped = false;
      state = revive(state);
      waiter.ticket = state.served;
      state.waiting.unshift(waiter);
    }
    // The head takes a slot another version gave back (of its account, or of another account).
    if (waiter.release === null && state.waiting[0] === waiter) {
      if (!mayOpen(state, limits)) sweep(now, limits);
      if (mayOpen(state, limits)) {
        state.waiting.shift();
        state.served = waiter.ticket + 1;
        waiter.release = lease(state, now, waiter);
      }
    }
  }
  waiter.release.held.taken = true;
  return waiter.release;
}

// The version's entry again, for a waiter whose entry was dropped while it was taken for gone.
function revive(state) {
  const current = versions.get(state.key);
  if (current !== undefined) return current;
  const revived = stateOf(state.account.id, state.version);
  revived.tickets = state.tickets;
  revived.served = state.served;
  return revived;
}

// Takes back leases of invocations workerd cancelled, and slots handed to waiters that are gone.
function reclaim(state, before, goneBefore) {
  for (const held of state.open) {
    if (held.at < before || (held.waiter !== undefined && !held.taken && held.waiter.seen < goneBefore)) {
      drop(state, held);
    }
  }
  state.waiting = state.waiting.filter((waiter) => {
    waiter.skipped = waiter.at < before || waiter.seen < goneBefore;
    return !waiter.skipped;
  });
}

// reclaim() for every version, at most once a second: a version held back by its account's or the
// shard's bound may be waiting on leases of other versions that will never be released.
function sweep(now, limits) {
  if (now - shard.sweptAt < SWEEP_MS) return;
  shard.sweptAt = now;
  for (const state of [...versions.values()]) {
    reclaim(state, now - limits.hold, now - GONE_MS);
    while (state.waiting.length > 0 && mayOpen(state, limits)) handOver(state);
    forgetIfIdle(state);
  }
}

// How long a subrequest can live: its invocation's deadline and waitUntil time, and a second.
function holdMs(settings) {
  return (settings.requestTimeoutMs ?? 30000) + (settings.waitUntilMs ?? 30000) + 1000;
}

// Takes a slot now, for the caller or for a waiter (who takes it on its next look).
function lease(state, at, waiter) {
  const held = { at, waiter, taken: waiter === undefined };
  state.open.add(held);
  state.account.open++;
  shard.open++;
  const release = () => {
    // Handed to the version's next waiter only when the version's own bound held it back; a slot
    // under its account's bound or the shard's fair shares goes to whichever held-back queue head
    // (of this version or another) looks first and may open.
    const shared = state.account.open >= bounds.account || shard.open >= bounds.firstCome;
    if (!drop(state, held)) return;
    if (!shared && state.waiting.length > 0 && mayOpen(state, bounds)) handOver(state);
    forgetIfIdle(state);
  };
  release.held = held;
  return release;
}

// Gives a lease back: false when it was already given back (or taken back).
function drop(state, held) {
  if (!state.open.delete(held)) return false;
  state.account.open--;
  shard.open--;
  return true;
}

// Gives a freed slot to the first waiter of the version still polling.
function handOver(state) {
  const goneBefore = Date.now() - GONE_MS;
  while (state.waiting.length > 0) {
    const next = state.waiting.shift();
    state.served = next.ticket + 1;
    if (next.seen < goneBefore) {
      next.skipped = true;
      continue;
    }
    next.release = lease(state, Date.now(), next);
    return;
  }
}
