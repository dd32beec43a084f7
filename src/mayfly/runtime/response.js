// The response path: a tenant's answer under the request's wall-clock deadline (runWithDeadline:
// the call, the body's pipe, a WebSocket's proxy, the work it left running) and the platform's own
// answers (platformError, unavailable).

import { leftRunning, timeElapsed, waitUntilEnded } from "./inflight.js";
import { LINGER_HEADER, THREW_HEADER } from "./tenant.js";

// The wall-clock limit covers the whole response: an asynchronous hang before the headers ends with
// 504, a body still streaming at the deadline is cut there (the client sees a truncated response).
// One timer per request: the deadline's signal aborts the call to the tenant and, later, the pipe
// its body goes through. A synchronous loop blocks this whole process: only the supervisor's probe
// can end that, by killing the shard.
export async function runWithDeadline(worker, request, { requestTimeoutMs: timeoutMs, waitUntilMs }, ctx, versionId) {
  const deadline = AbortSignal.timeout(timeoutMs);
  let response;
  try {
    response = await worker.getEntrypoint().fetch(request, { signal: deadline });
  } catch (err) {
    if (deadline.aborted) {
      // Its code may still run (what it left to waitUntil ends within the cap: tenant.js).
      const timedOut = platformError(504, "timeout", `The Worker did not answer within ${timeoutMs / 1000} s.`);
      const running = timeElapsed(waitUntilMs);
      ctx.waitUntil(running);
      leftRunning.set(timedOut, running);
      return timedOut;
    }
    return platformError(500, "exception", "The Worker threw an exception.");
  }
  // Only responses that left work, and WebSocket ones, cost more than this header lookup.
  const token = response.headers.get(LINGER_HEADER);
  let running = token === null ? null : waitUntilEnded(token, versionId, waitUntilMs);
  if (running !== null) {
    if (response.headers.has(THREW_HEADER)) {
      response = platformError(500, "exception", "The Worker threw an exception.");
    } else {
      response = new Response(response.body, response);
      response.headers.delete(LINGER_HEADER);
    }
  }
  if (response.webSocket) {
    let closed;
    [response, closed] = proxiedSocket(response);
    running = running === null ? closed : Promise.all([running, closed]);
  }
  response = bodyWithDeadline(response, deadline, ctx);
  const streamed = leftRunning.get(response);
  if (running !== null) {
    running = streamed ? Promise.all([running, streamed]) : running;
    ctx.waitUntil(running); // this request's context (its timers, its end mark) lasts as long
    leftRunning.set(response, running);
  }
  return response;
}

// The body goes through a native pipe that the deadline aborts: no JavaScript runs per chunk.
function bodyWithDeadline(response, deadline, ctx) {
  if (response.body === null || response.webSocket) return response;
  const length = Number(response.headers.get("content-length"));
  const { readable, writable } =
    Number.isSafeInteger(length) && length >= 0 && response.headers.has("content-length")
      ? new FixedLengthStream(length)
      : new IdentityTransformStream();
  const piped = response.body.pipeTo(writable, { signal: deadline }).catch(() => {});
  ctx.waitUntil(piped);
  const forwarded = new Response(readable, response);
  leftRunning.set(forwarded, piped); // the tenant's pull() runs until the body ended
  return forwarded;
}

// A WebSocket's tenant end, proxied through a pair of the dispatcher's (JavaScript per message for
// WebSocket users only): settled once either end closed, when both are closed.
function proxiedSocket(response) {
  const tenant = response.webSocket;
  const [client, server] = Object.values(new WebSocketPair());
  tenant.accept();
  server.accept();
  const closed = new Promise((resolve) => {
    const end = (socket, code, reason) => {
      try {
        socket.close(code, reason);
      } catch {
        try {
          socket.close();
        } catch {
          // already closed
        }
      }
    };
    const join = (from, to) => {
      from.addEventListener("message", (event) => {
        try {
          to.send(event.data);
        } catch {
          // the other end is closing
        }
      });
      from.addEventListener("close", (event) => {
        end(to, event.code, event.reason);
        end(from, event.code, event.reason);
        resolve();
      });
      from.addEventListener("error", () => {
        end(to, 1011, "WebSocket error");
        end(from, 1011, "WebSocket error");
        resolve();
      });
    };
    join(tenant, server);
    join(server, tenant);
  });
  const proxied = new Response(null, { status: 101, statusText: response.statusText, headers: response.headers, webSocket: client });
  return [proxied, closed];
}

export function platformError(status, kind, message, headers = {}) {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "x-mayfly-error": kind, ...headers },
  });
}

// A Worker that took a shard down answers 503 until its quarantine ends (services/workers/
// quarantine.py); a suspended account's Workers answer 503 until the operator resumes it, and the
// route is asked again after the `quarantined_until_ms` the control plane gave.
export function unavailable(route) {
  const seconds = Math.max(1, Math.ceil((route.quarantined_until_ms - Date.now()) / 1000));
  const fallback = route.status === "suspended" ? "This Worker's account is suspended." : "This Worker is quarantined.";
  return platformError(503, route.status, `${route.message || fallback} Try again in ${seconds} s.`, {
    "retry-after": String(seconds),
  });
}
