// What every tenant isolate gets besides its own modules: the source of the platform's modules
// that run there (built here, run in the tenant's isolate) and withPrelude, which adds them to a
// version's modules. The request metadata a tenant sees is set in the dispatcher (metadata.js).
//
// The Worker Loader has no Cache API option (workerd's WorkerCode: "TODO(someday): cache API
// outbound?"), so an isolate's own `caches` throws "No Cache was configured". Tenants get the Cache
// API of a workers.dev hostname instead: nothing is stored, `match` misses, `put` drops the
// response, `delete` finds nothing, and nothing throws. A prelude module installs it before any of
// the tenant's modules run, and a wrapper main module re-exports the tenant's main module.

// Names no upload takes in practice; relative imports from the wrapper reach the tenant's modules.
const PRELUDE = "__mayfly__/prelude.js";
const WRAPPER = "__mayfly__/main.js";
const D1_CLIENT = "__mayfly__/d1.js";
const BINDINGS = "__mayfly__/bindings.js";
export const CAPTURE = "__mayfly__/capture.js";
// The wrapper's export through which the platform calls a named entrypoint (services.js, the
// dispatcher's service fetch): props {entrypoint: its name}. It replaces the context prototype's
// waitUntil before the tenant's entrypoint is constructed with that context.
export const ENTRYPOINT_EXPORT = "__mayfly_entrypoint__";
// The dispatcher's Linger stub in env (taken out by the prelude before any tenant module runs) and
// the response header by which the wrapper says that a response left work behind (response.js).
export const LINGER_BINDING = "__mayfly_linger__";
export const LINGER_HEADER = "x-mayfly-linger";
export const THREW_HEADER = "x-mayfly-threw";

import { D1_CLIENT_SOURCE } from "./d1.js";

// The wrapper's first import, so it runs before cloudflare:workers is first evaluated in the
// isolate: that module makes its waitUntil export as \`entrypoints.waitUntil.bind(entrypoints)\`
// (workerd's src/cloudflare/workers.ts), and the one bind() call on a function named waitUntil is
// answered with a function that forwards to the prelude, the real one kept for the prelude alone.
// The hook removes itself then, and the prelude removes it in any case. A module of the Worker's
// own cannot shadow the built-in for the prelude (the Worker Loader takes a module named
// "cloudflare:workers", but then nothing reaches the real one). Costs nothing per request.
const CAPTURE_SOURCE = `
const bind = Function.prototype.bind;
export const captured = { bind, original: null, replacement: null };
function waitUntil(promise) {
  return captured.replacement(promise);
}
Object.defineProperty(waitUntil, "name", { value: "bound waitUntil" });
Function.prototype.bind = function (...args) {
  if (captured.original === null && typeof this === "function" && this.name === "waitUntil") {
    Function.prototype.bind = bind;
    captured.original = Reflect.apply(bind, this, args);
    return waitUntil;
  }
  return Reflect.apply(bind, this, args);
};
`;

const PRELUDE_SOURCE = `
import { env, WorkerEntrypoint } from "cloudflare:workers";
import { captured } from "./capture.js";

// Work a response leaves behind (waitUntil) runs at most capMs after the response, as on
// Cloudflare (workerd sets no limit), and the dispatcher counts the version as running until it
// ended: the tenant's handler gets a context whose waitUntil hands the real one each promise raced
// against the cap; a response that left such work carries LINGER_HEADER (a random token), and
// Linger.done(token) tells the dispatcher when the last one settled. What this relies on is taken
// here, before any of the tenant's modules runs: the stub (out of env), timers, Promise.then.
const linger = env[${JSON.stringify(LINGER_BINDING)}];
delete env[${JSON.stringify(LINGER_BINDING)}];
Function.prototype.bind = captured.bind; // capture.js's hook is gone (whether or not it fired)
captured.replacement = (promise) => rawWaitUntil(promise);
const OriginalPromise = Promise;
const promiseThen = Promise.prototype.then;
const resolved = Promise.resolve.bind(Promise);
const rejected = Promise.reject.bind(Promise);
const apply = Reflect.apply;
const startTimer = setTimeout;
const now = Date.now;
const OriginalResponse = Response;
const randomValues = crypto.getRandomValues.bind(crypto);
const then = (promise, onFulfilled, onRejected) => apply(promiseThen, promise, [onFulfilled, onRejected]);
const hex = (byte) => (byte < 16 ? "0" : "") + byte.toString(16);
const ignore = () => {};
function randomToken() {
  const bytes = new Uint8Array(16);
  randomValues(bytes);
  return Array.from(bytes, hex).join("");
}

// workerd's own waitUntil, which adds to the IoContext running now whatever object it is reached
// through: the export of cloudflare:workers (captured by capture.js before any module could import
// it) and ExecutionContext.prototype.waitUntil (replaced from the first context workerd hands any
// of the Worker's entrypoints, before the tenant sees it: every entrypoint is reached through the
// wrapper, see lingering and entrypoint). Both are replaced by rawWaitUntil, so no tenant code
// reaches them. workerd exposes no ExecutionContext global (no context exists before a call), so
// the prototype can only be taken from a context. Any context-like object whose prototype has its
// own waitUntil is patched, not only the first one seen: tenant code could call a wrapped handler
// with a context of its own making, which must not stop the real prototype from being replaced.
const getPrototypeOf = Object.getPrototypeOf;
const hasOwn = Object.hasOwn;
const defineProperty = Object.defineProperty;
const ObjectPrototype = Object.prototype;
let anyContext = null;
let contextWaitUntil = null;
function realWaitUntil(promise) {
  if (captured.original !== null) return captured.original(promise);
  return apply(contextWaitUntil, anyContext, [promise]);
}
function replacementWaitUntil(promise) {
  rawWaitUntil(promise);
}
defineProperty(replacementWaitUntil, "name", { value: "waitUntil" });
let lastPrototype = null;
function takeContext(ctx) {
  if (!ctx || typeof ctx !== "object") return;
  const prototype = getPrototypeOf(ctx);
  if (prototype === lastPrototype || prototype === null || prototype === ObjectPrototype) return;
  if (!hasOwn(prototype, "waitUntil")) return;
  const method = prototype.waitUntil;
  if (method === replacementWaitUntil || typeof method !== "function") return;
  try {
    defineProperty(prototype, "waitUntil", { value: replacementWaitUntil, writable: true, configurable: true });
  } catch {
    return; // not workerd's: a prototype of the tenant's own that refuses the change
  }
  lastPrototype = prototype;
  if (anyContext === null) {
    anyContext = ctx;
    contextWaitUntil = method;
  }
}
let settings = { capMs: 30000, limitMs: 30000 };

// The fetch invocations whose version the dispatcher still counts as running: not answered yet, or
// answered with work left (their token not done). All of an isolate's invocations are one version
// on one shard, so work the wrapper cannot place (the waitUntil imported from cloudflare:workers, a
// real context's, a context whose invocation ended) keeps the newest of them open and is raced
// against its cap; with none open (code run from a WebSocket or a stream after its response) a new
// one is opened at the dispatcher (Linger.hold), capped from now.
const open = new Set();

function rawWaitUntil(promise) {
  let holder = null;
  const stale = now() - settings.limitMs;
  for (const invocation of open) {
    if (invocation.answered || invocation.started > stale) holder = invocation;
    else open.delete(invocation); // past the request deadline: the dispatcher gave up on it
  }
  (holder ?? held()).waitUntil(promise);
}

function held() {
  const invocation = new Invocation(null, settings.capMs, settings.limitMs);
  invocation.answered = true;
  invocation.state = "open";
  invocation.token = randomToken();
  invocation.cap = new OriginalPromise((resolve) => (invocation.release = resolve));
  startTimer(invocation.release, settings.capMs);
  open.add(invocation);
  if (linger) realWaitUntil(then(resolved(linger.hold(invocation.token)), undefined, ignore));
  return invocation;
}

class Invocation {
  pending = 0;
  answered = false;
  token = null;
  cap = null;
  release = null;
  // "idle" until fetch is called (or scheduled), "open" while it counts as running, then "closed".
  state = "idle";
  started = 0;
  constructor(ctx, capMs, limitMs) {
    this.ctx = ctx;
    this.capMs = capMs;
    this.limitMs = limitMs;
  }
  waitUntil(promise) {
    // Not (or no longer) counted as running: a context kept past its invocation, an RPC method's.
    if (this.state !== "open" && this.state !== "scheduled") return rawWaitUntil(promise);
    if (this.cap === null) {
      this.cap = new OriginalPromise((resolve) => (this.release = resolve));
      // Bounded even when no response ever leaves (a handler past the request deadline).
      startTimer(this.release, this.limitMs + this.capMs);
    }
    this.pending += 1;
    // The call that tells the dispatcher is part of the last promise the real waitUntil holds.
    const done = () => this.settled();
    const raced = new OriginalPromise((resolve, reject) => {
      then(this.cap, resolve);
      then(resolved(promise), resolve, reject);
    });
    // A rejection still reaches the real waitUntil (and the Worker's tails), after the done call.
    const failed = (err) => then(resolved(done()), () => rejected(err));
    realWaitUntil(then(raced, done, failed));
  }
  settled() {
    this.pending -= 1;
    if (this.pending === 0 && this.answered) {
      const token = this.token;
      this.close();
      if (token !== null && linger) return then(resolved(linger.done(token)), undefined, ignore);
    }
  }
  close() {
    if (this.state === "open") open.delete(this);
    this.state = "closed";
    this.token = null;
  }
  // After the handler answered (or threw): start the cap and, if work was left, say so.
  leave() {
    this.answered = true;
    if (this.pending === 0) {
      this.close();
      return null;
    }
    startTimer(this.release, this.capMs);
    if (this.state === "scheduled") return null;
    this.token = randomToken();
    return this.token;
  }
  async answer(handle) {
    this.state = "open";
    this.started = now();
    open.add(this);
    let response;
    try {
      response = await handle();
    } catch (err) {
      const token = this.leave();
      if (token === null) throw err;
      return threw(token);
    }
    const token = this.leave();
    if (token === null) return response;
    try {
      const socket = response.webSocket;
      const copy = socket
        ? new OriginalResponse(null, { status: 101, statusText: response.statusText, headers: response.headers, webSocket: socket })
        : new OriginalResponse(response.body, response);
      copy.headers.set(${JSON.stringify(LINGER_HEADER)}, token);
      return copy;
    } catch {
      return threw(token); // not a Response: the dispatcher answers 500, and still waits
    }
  }
}

function threw(token) {
  return new OriginalResponse(null, {
    status: 500,
    headers: { ${JSON.stringify(LINGER_HEADER)}: token, ${JSON.stringify(THREW_HEADER)}: "1" },
  });
}

// The context a tenant's handler sees: the real one's, except waitUntil.
class TenantContext {
  #ctx;
  #invocation;
  constructor(ctx, invocation) {
    this.#ctx = ctx;
    this.#invocation = invocation;
  }
  waitUntil(promise) {
    this.#invocation.waitUntil(promise);
  }
  passThroughOnException() {
    return this.#ctx.passThroughOnException();
  }
  abort(reason) {
    return this.#ctx.abort(reason);
  }
  mapVirtualHost(...args) {
    return this.#ctx.mapVirtualHost(...args);
  }
  get props() {
    return this.#ctx.props;
  }
  get exports() {
    return this.#ctx.exports;
  }
  get tracing() {
    return this.#ctx.tracing;
  }
  get access() {
    return this.#ctx.access;
  }
  get cache() {
    return this.#ctx.cache;
  }
}

function contextFor(ctx, capMs, limitMs) {
  takeContext(ctx);
  const invocation = new Invocation(ctx, capMs, limitMs);
  return [invocation, new TenantContext(ctx, invocation)];
}

// The tenant's default export with that context: an object's fetch and scheduled handlers, a
// WorkerEntrypoint class's constructor (its ctx) and fetch; a class without fetch (RPC methods
// only) has its context's prototype patched before its constructor sees it. Anything else is left
// as it is.
export function lingering(handler, capMs, limitMs) {
  settings = { capMs, limitMs };
  if (typeof handler === "function") {
    if (!handler.prototype) return handler;
    if (!("fetch" in handler.prototype)) {
      return class extends handler {
        constructor(ctx, env) {
          takeContext(ctx);
          super(ctx, env);
        }
      };
    }
    return class extends handler {
      #invocation;
      constructor(ctx, env) {
        const [invocation, tenantCtx] = contextFor(ctx, capMs, limitMs);
        super(tenantCtx, env);
        this.#invocation = invocation;
      }
      fetch(request) {
        return this.#invocation.answer(() => super.fetch(request));
      }
    };
  }
  if (!handler || typeof handler !== "object") return handler;
  const wrapped = Object.create(handler);
  if (typeof handler.fetch === "function") {
    wrapped.fetch = (request, env, ctx) => {
      const [invocation, tenantCtx] = contextFor(ctx, capMs, limitMs);
      return invocation.answer(() => handler.fetch(request, env, tenantCtx));
    };
  }
  if (typeof handler.scheduled === "function") {
    // workerd holds the scheduled event until its waitUntil work ended (the dispatcher waits for
    // it): the cap applies, no token is needed, and it is no holder for work placed by rawWaitUntil.
    wrapped.scheduled = async (controller, env, ctx) => {
      const [invocation, tenantCtx] = contextFor(ctx, capMs, limitMs);
      invocation.state = "scheduled";
      try {
        return await handler.scheduled(controller, env, tenantCtx);
      } finally {
        invocation.leave();
      }
    };
  }
  return wrapped;
}

// What the platform calls instead of the tenant's named entrypoint (props.entrypoint: its name):
// workerd constructs this class with a real context, whose prototype's waitUntil is replaced
// before the tenant's own entrypoint is constructed with it, and the tenant's instance is what the
// constructor returns, so workerd's RPC and fetch reach it exactly as they would have. (A named
// entrypoint reached directly would be given a real context before any wrapped handler ran: the
// tenant could keep the original waitUntil and run work uncapped and unseen.) The context's props
// are what the tenant's entrypoint would have had: none.
export function entrypoint(namespace) {
  return class extends WorkerEntrypoint {
    constructor(ctx, env) {
      takeContext(ctx);
      const name = ctx.props?.entrypoint;
      const target = typeof name === "string" && name !== "default" ? namespace[name] : undefined;
      try {
        defineProperty(ctx, "props", { value: {}, writable: true, configurable: true, enumerable: true });
      } catch {
        // a context whose props cannot be replaced: it keeps the platform's
      }
      if (typeof target === "function" && target.prototype instanceof WorkerEntrypoint) {
        return Reflect.construct(target, [ctx, env]);
      }
      if (target && typeof target === "object") return new HandlerEntrypoint(target, env, ctx);
      throw new TypeError(\`The Worker has no entrypoint named \${JSON.stringify(String(name))}.\`);
    }
  };
}

// A named export that is a handler object: its handlers with the Worker's env and the context.
class HandlerEntrypoint extends WorkerEntrypoint {
  #handler;
  #env;
  #ctx;
  constructor(handler, env, ctx) {
    super(ctx, env);
    this.#handler = handler;
    this.#env = env;
    this.#ctx = ctx;
  }
  #call(name, argument) {
    const handler = this.#handler[name];
    if (typeof handler !== "function") throw new TypeError(\`Handler does not export a \${name}() handler.\`);
    return apply(handler, this.#handler, [argument, this.#env, this.#ctx]);
  }
  fetch(request) {
    return this.#call("fetch", request);
  }
  connect(socket) {
    return this.#call("connect", socket);
  }
  scheduled(controller) {
    return this.#call("scheduled", controller);
  }
  queue(batch) {
    return this.#call("queue", batch);
  }
}

class Cache {
  async match(request, options) {
    return undefined;
  }
  async put(request, response) {
    try {
      await response?.body?.cancel();
    } catch {
      // a body already read or locked: nothing to drop
    }
    return undefined;
  }
  async delete(request, options) {
    return false;
  }
}
class CacheStorage {
  #default = new Cache();
  get default() {
    return this.#default;
  }
  async open(cacheName) {
    return new Cache();
  }
}
// Service-worker syntax: the listeners a script adds for "fetch" are what the wrapper serves
// when the main module exports no handler. Its bindings become globals (what Cloudflare does for
// such scripts), when it adds its first listener, and never over an existing global.
const listeners = { fetch: [] };
const addEventListener = globalThis.addEventListener?.bind(globalThis);
Object.defineProperty(globalThis, "addEventListener", {
  value(type, listener, options) {
    if (type === "fetch") {
      for (const [name, value] of Object.entries(env)) {
        if (!(name in globalThis)) globalThis[name] = value;
      }
      listeners.fetch.push(listener);
      return;
    }
    return addEventListener?.(type, listener, options);
  },
  writable: true,
  configurable: true,
});

export function serviceWorker() {
  if (listeners.fetch.length === 0) return undefined;
  return {
    async fetch(request, env, ctx) {
      let response;
      const event = {
        type: "fetch",
        request,
        respondWith(value) {
          if (response !== undefined) throw new Error("respondWith() was already called");
          response = Promise.resolve(value);
        },
        waitUntil(promise) {
          ctx.waitUntil(promise);
        },
        passThroughOnException() {},
      };
      for (const listener of listeners.fetch) {
        if (typeof listener === "function") listener(event);
        else listener.handleEvent(event);
        if (response !== undefined) break;
      }
      if (response === undefined) throw new Error("No fetch listener called respondWith()");
      return response;
    },
  };
}
Object.defineProperty(globalThis, "Cache", { value: Cache, writable: true, configurable: true });
Object.defineProperty(globalThis, "CacheStorage", { value: CacheStorage, writable: true, configurable: true });
Object.defineProperty(globalThis, "caches", {
  value: new CacheStorage(),
  writable: true,
  configurable: true,
  enumerable: true,
});
`;

// The entrypoint of a loaded version the platform calls for a service binding: the default export
// (null, undefined or "default") as it is, a named one through the wrapper's ENTRYPOINT_EXPORT.
export function tenantEntrypoint(worker, name) {
  if (name === null || name === undefined || name === "default") return worker.getEntrypoint();
  return worker.getEntrypoint(ENTRYPOINT_EXPORT, { props: { entrypoint: name } });
}

// {mainModule, modules} for the loader: the tenant's modules plus the prelude and the wrapper.
// Only an ES main module is wrapped (its named exports and default are re-exported as they are).
// `d1Names`: env entries that are D1 stubs (d1.js), replaced by Cloudflare's D1Database API before
// any of the tenant's modules runs.
// `waitUntilMs`: how long after its response a request's waitUntil work may run; `limitMs`: the
// request deadline (work left by a request that never answered ends at limitMs + waitUntilMs).
export function withPrelude(mainModule, modules, mainKind, d1Names = [], waitUntilMs = 30000, limitMs = 30000) {
  // Always wrapped: the platform's modules replace any of the Worker's own under these names (one
  // named like the prelude used to skip the wrapper, and with it the waitUntil cap and tracking).
  if (!["esm", "cjs"].includes(mainKind)) {
    return { mainModule, modules };
  }
  const target = JSON.stringify(`../${mainModule}`);
  const bindings =
    `import { env } from "cloudflare:workers";\n` +
    `import { D1Database } from "./d1.js";\n` +
    `for (const name of ${JSON.stringify(d1Names)}) env[name] = new D1Database(env[name]);\n`;
  const wrapper =
    `import "./capture.js";\n` +
    `import "./bindings.js";\n` +
    `import { entrypoint, lingering, serviceWorker } from ${JSON.stringify("./prelude.js")};\n` +
    `import * as tenant from ${target};\n` +
    (mainKind === "esm" ? `export * from ${target};\n` : "") +
    // Named entrypoints are reached through this one (it shadows a tenant export of that name).
    `export const ${ENTRYPOINT_EXPORT} = entrypoint(tenant);\n` +
    // A CommonJS script's module.exports stays {} when it only adds listeners.
    `const handler = tenant.default;\n` +
    `const exported = typeof handler === "function" || (handler && Object.keys(handler).length > 0);\n` +
    `export default lingering(exported ? handler : (serviceWorker() ?? handler), ${Number(waitUntilMs)}, ${Number(limitMs)});\n`;
  return {
    mainModule: WRAPPER,
    modules: {
      ...modules,
      [CAPTURE]: { js: CAPTURE_SOURCE },
      [PRELUDE]: { js: PRELUDE_SOURCE },
      [D1_CLIENT]: { js: D1_CLIENT_SOURCE },
      [BINDINGS]: { js: bindings },
      [WRAPPER]: { js: wrapper },
    },
  };
}
