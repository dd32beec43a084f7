// What every tenant isolate gets besides its own modules. The Worker Loader has no Cache API
// option (workerd's WorkerCode: "TODO(someday): cache API outbound?"), so an isolate's own
// `caches` throws "No Cache was configured". Tenants get the Cache API of a workers.dev hostname
// instead: nothing is stored, `match` misses, `put` drops the response, `delete` finds nothing, and
// nothing throws. A prelude module installs it before any of the tenant's modules run, and a
// wrapper main module re-exports the tenant's main module.

// Names no upload takes in practice; relative imports from the wrapper reach the tenant's modules.
const PRELUDE = "__mayfly__/prelude.js";
const WRAPPER = "__mayfly__/main.js";

const PRELUDE_SOURCE = `
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
Object.defineProperty(globalThis, "Cache", { value: Cache, writable: true, configurable: true });
Object.defineProperty(globalThis, "CacheStorage", { value: CacheStorage, writable: true, configurable: true });
Object.defineProperty(globalThis, "caches", {
  value: new CacheStorage(),
  writable: true,
  configurable: true,
  enumerable: true,
});
`;

// {mainModule, modules} for the loader: the tenant's modules plus the prelude and the wrapper.
// Only an ES main module is wrapped (its named exports and default are re-exported as they are).
export function withPrelude(mainModule, modules, mainKind) {
  if (mainKind !== "esm" || modules[PRELUDE] !== undefined || modules[WRAPPER] !== undefined) {
    return { mainModule, modules };
  }
  const target = JSON.stringify(`../${mainModule}`);
  const wrapper =
    `import ${JSON.stringify("./prelude.js")};\n` +
    `import * as tenant from ${target};\n` +
    `export * from ${target};\n` +
    `export default tenant.default;\n`;
  return {
    mainModule: WRAPPER,
    modules: { ...modules, [PRELUDE]: { js: PRELUDE_SOURCE }, [WRAPPER]: { js: wrapper } },
  };
}
