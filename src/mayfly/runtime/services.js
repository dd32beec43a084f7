// Service bindings: `env.<NAME> = ctx.exports.ServiceBinding({props})` (loader.js), the props
// set by the platform: the target Worker's script id, its entrypoint (a named export, or the
// default) and the calling version (the control plane answers only for a Worker of the caller's
// account). The tenant can neither read nor change them.
//
// Each call finds the target's current version as a request to its URL would (same route cache,
// invalidated by its deploys), loads it through the Worker Loader and forwards the call: fetch()
// as a request (through its static assets, when it has some, for the default entrypoint), and any
// other method as JS RPC to that entrypoint. The instance is a Proxy, so every method name is
// forwarded, as Cloudflare's service stub does; `env` and `ctx` are never handed out (they are
// forwarded as method names too, and the target refuses them). The calling request stays the
// one in flight: its wall-clock limit covers the call, and an incident is attributed to it.

import { WorkerEntrypoint } from "cloudflare:workers";
import { tenantEntrypoint } from "./tenant.js";

const SECRET_HEADER = "x-mayfly-internal-secret";
// `${script_id}:${caller}` -> {host, at}: where the target Worker lives now (a claim renames it).
const hosts = new Map();
const MAX_HOSTS = 10000;
let resolver = null;
// script_id -> calls in flight to it on this shard. A Worker calling itself (or a ring of Workers
// calling each other) without end is refused at this depth, as Cloudflare refuses one past its
// depth limit, instead of flooding the shard until its health probe fails.
const inFlight = new Map();
export const MAX_IN_FLIGHT = 64;

// dispatcher.js hands over how it resolves and loads a host's Worker.
export function serveServicesWith(resolve) {
  resolver = resolve;
}

export class ServiceBinding extends WorkerEntrypoint {
  constructor(ctx, env) {
    super(ctx, env);
    const props = ctx.props;
    const forward = (method) => (...args) =>
      counted(props, async () => {
        const { worker } = await target(env, ctx, props);
        if (!worker) throw new Error(`Service binding: the Worker ${props.service} has no code to call.`);
        return tenantEntrypoint(worker, props.entrypoint)[method](...args);
      });
    const fetch = (request) =>
      counted(props, async () => {
        const found = await target(env, ctx, props);
        return found.fetch(new Request(request));
      });
    return new Proxy(this, {
      get(self, prop, receiver) {
        if (typeof prop !== "string") return Reflect.get(self, prop, receiver);
        if (prop === "fetch") return fetch;
        if (prop === "then") return undefined;
        return forward(prop);
      },
    });
  }
}

// A cached host that no longer serves (a claim moved the Worker) is asked for again, once.
async function counted(props, call) {
  const running = inFlight.get(props.script_id) ?? 0;
  if (running >= MAX_IN_FLIGHT) {
    throw new Error(
      `Service binding: ${MAX_IN_FLIGHT} calls to ${props.service} are already in flight here ` +
        "(a Worker calling itself, or Workers calling each other, without end?).",
    );
  }
  inFlight.set(props.script_id, running + 1);
  try {
    return await call();
  } finally {
    const left = (inFlight.get(props.script_id) ?? 1) - 1;
    if (left > 0) inFlight.set(props.script_id, left);
    else inFlight.delete(props.script_id);
  }
}

async function target(env, ctx, props) {
  if (resolver === null) throw new Error("Service bindings are not available on this data plane.");
  const host = await hostOf(env, props);
  try {
    return await resolver(env, ctx, host, props);
  } catch (err) {
    hosts.delete(hostKey(props));
    const fresh = await hostOf(env, props);
    if (fresh === host) throw err;
    return resolver(env, ctx, fresh, props);
  }
}

function hostKey(props) {
  return `${props.script_id}:${props.caller}`;
}

async function hostOf(env, props) {
  const key = hostKey(props);
  const cached = hosts.get(key);
  if (cached && Date.now() - cached.at < env.SETTINGS.routeTtlMs) return cached.host;
  const path = `/internal/v1/services/${encodeURIComponent(props.script_id)}?caller=${encodeURIComponent(props.caller)}`;
  const response = await env.CONTROL_PLANE.fetch(`http://control-plane${path}`, {
    headers: { [SECRET_HEADER]: env.INTERNAL_SECRET },
    signal: AbortSignal.timeout(env.SETTINGS.controlPlaneTimeoutMs),
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`Service binding: the Worker ${props.service} is not deployed in this account.`);
  }
  const { host } = await response.json();
  hosts.delete(key);
  if (hosts.size >= MAX_HOSTS) hosts.delete(hosts.keys().next().value);
  hosts.set(key, { host, at: Date.now() });
  return host;
}
