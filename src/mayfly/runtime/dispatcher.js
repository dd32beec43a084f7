// The dispatcher Worker: one per shard. It maps the Host header to a tenant's version through the
// control plane's internal API, loads that version with the Worker Loader (one isolate per version
// id) and forwards the request. The supervisor reaches the `Admin` entrypoint through the shard's
// private admin socket for health probes and route invalidations. The entrypoints handed to tenants
// live in their own modules and are re-exported here (ctx.exports only sees the main module's):
// KV (kv.js) backs KV bindings, TailSink (tail.js) receives the trace items of tailed Workers,
// AssetsBinding (assets.js) is an assets binding. A version with static assets is served through
// assets.js: Cloudflare's router and asset-worker decide what the Worker sees.
//
// This module is the request's way through (the default fetch) and the Worker's main module; the
// rest is in modules of one job each: routes.js (which version serves a host), loader.js (a
// version in an isolate: its code, modules and env), metadata.js (the request metadata a tenant
// sees), inflight.js (what runs: in-flight records, marks, the Linger entrypoint), response.js (the
// deadline and the platform's own answers), admin.js (the Admin entrypoint), control.js (the
// control plane's internal API). workerd loads them all (DISPATCHER_MODULES in config.py).
//
// Bindings (rendered by mayfly/runtime/config.py):
//   LOADER           Worker Loader
//   CONTROL_PLANE    external service: the control plane's internal listener
//   INTERNAL_SECRET  the internal API's per-boot secret (from the shard's environment)
//   PUBLIC_NET       network service that reaches public addresses only
//   SETTINGS         {requestTimeoutMs, routeTtlMs, staleRouteMs, controlPlaneTimeoutMs, subrequests,
//                    outboundConnections, accountOutboundConnections, shardOutboundConnections, ...}
//   SHARD_MARK       per-shard token that starts the request marks on stdout (runtime/shard.py)

import { serveSite } from "./assets.js";
import { settings } from "./control.js";
import { tracked } from "./inflight.js";
import { tenantFor } from "./loader.js";
import { withClientMetadata } from "./metadata.js";
import { platformError, runWithDeadline, unavailable } from "./response.js";
import { hostOf, resolveRoute, used } from "./routes.js";
import { serveServicesWith } from "./services.js";
import { tenantEntrypoint } from "./tenant.js";

export { KV } from "./kv.js";
export { D1 } from "./d1.js";
export { TailSink } from "./tail.js";
export { AssetsBinding } from "./assets.js";
export { R2 } from "./r2.js";
export { ServiceBinding } from "./services.js";
export { Outbound } from "./outbound.js";
export { Admin } from "./admin.js";
export { Linger } from "./inflight.js";

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

// A service binding's target (services.js): the Worker a request to `host` would reach, loaded as
// for such a request; fetch() goes through its static assets unless a named entrypoint is bound.
serveServicesWith(async (env, ctx, host, props) => {
  const route = await resolveRoute(env, host);
  const expired = route.expires_at_ms !== null && route.expires_at_ms !== undefined && Date.now() >= route.expires_at_ms;
  if (route.status !== "ok" || expired) {
    throw new Error(`Service binding: the Worker ${props.service} is not available (${expired ? "expired" : route.status}).`);
  }
  const { site, worker } = await tenantFor(env, ctx, route.version_id, route.tail === true);
  const call = (request) => tenantEntrypoint(worker, props.entrypoint).fetch(request);
  const fetch = (request) =>
    site.assets && props.entrypoint === null ? serveSite(env, ctx, site, request, worker && call) : call(request);
  return { worker, fetch };
});
