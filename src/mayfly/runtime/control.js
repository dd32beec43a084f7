// Talking to the control plane's internal API, for every module of the dispatcher: the shard's
// settings (the SETTINGS binding), authenticated GETs, and one lookup per key in flight (shared).

const SECRET_HEADER = "x-mayfly-internal-secret";

export function settings(env) {
  return env.SETTINGS;
}

export async function internalGet(env, path) {
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
export async function shared(inflight, key, lookup) {
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
