// Request metadata as Cloudflare sets it, on every request the dispatcher hands a tenant (one call
// of withClientMetadata per request, in the dispatcher's isolate). workerd gives the dispatcher the
// peer address as request.cf.clientIp ("127.0.0.1:44440", "[::1]:44440": the socket has no
// cfBlobHeader). Behind a trusted proxy (--forwarded-allow-ips) the client is the one
// X-Forwarded-For names, and X-Forwarded-Proto says how it connected. Headers a client sends under
// Cloudflare's names never reach the Worker as sent. workerd serves plain HTTP/1.1 only, so that is
// the protocol; TLS, where a proxy terminates it, is not described to us, so tlsVersion/tlsCipher are
// left out. There is no GeoIP database: country is Cloudflare's own "unknown" (XX) and colo a fixed
// placeholder.
export const COLO = "MFY";
const UNKNOWN_COUNTRY = "XX";

// Per request (measured with bench/deploy.py): the headers are copied natively and only the few
// that need it are deleted or set, the URL is rebuilt only when the scheme changes, and ray ids come
// from a pool of random bytes refilled in bulk.
export function withClientMetadata(request, trustedProxies) {
  const proxies = trustedProxies ?? [];
  const peer = addressOf(request.cf?.clientIp);
  const trusted = proxies.length > 0 && isTrusted(peer, proxies);
  const headers = new Headers(request.headers);
  const forwardedFor = splitList(headers.get("x-forwarded-for"));
  const client = trusted ? forwardedClient(forwardedFor, peer, proxies) : peer;
  const forwardedProto = trusted ? (headers.get("x-forwarded-proto") ?? "").trim().toLowerCase() : "";
  let url = request.url;
  const scheme = url.startsWith("https:") ? "https" : "http";
  const proto = forwardedProto === "https" || forwardedProto === "http" ? forwardedProto : scheme;
  if (proto !== scheme) url = proto + url.slice(scheme.length);

  for (const name of [...headers.keys()]) {
    if (name.startsWith("cf-") || name === "x-real-ip") headers.delete(name);
  }
  const chain = trusted ? forwardedFor : [...forwardedFor, peer];
  if (chain.length > 0) headers.set("x-forwarded-for", chain.join(", "));
  else headers.delete("x-forwarded-for");
  headers.set("cf-connecting-ip", client);
  headers.set("x-real-ip", client);
  headers.set("x-forwarded-proto", proto);
  headers.set("cf-visitor", VISITOR[proto]);
  headers.set("cf-ray", `${rayId()}-${COLO}`);
  headers.set("cf-ipcountry", UNKNOWN_COUNTRY);

  const cf = { clientIp: client, httpProtocol: "HTTP/1.1", country: UNKNOWN_COUNTRY, colo: COLO };
  return new Request(url, {
    method: request.method,
    headers,
    body: request.body,
    redirect: "manual",
    cf,
  });
}

const VISITOR = { http: JSON.stringify({ scheme: "http" }), https: JSON.stringify({ scheme: "https" }) };

// "127.0.0.1:44440" -> "127.0.0.1", "[::1]:44440" -> "::1"; an address without a port as it is.
export function addressOf(peer) {
  const text = String(peer ?? "").trim();
  if (text.startsWith("[")) return text.slice(1, text.indexOf("]") > 0 ? text.indexOf("]") : undefined);
  const colons = text.split(":").length - 1;
  return colons === 1 ? text.slice(0, text.indexOf(":")) : text;
}

function splitList(value) {
  if (!value) return [];
  return value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
}

function isTrusted(address, trustedProxies) {
  return trustedProxies.includes("*") || trustedProxies.includes(address);
}

// As uvicorn does for the API: with "*" the first address, otherwise the nearest untrusted hop.
function forwardedClient(forwardedFor, peer, trustedProxies) {
  if (forwardedFor.length === 0) return peer;
  if (trustedProxies.includes("*")) return forwardedFor[0];
  for (let i = forwardedFor.length - 1; i >= 0; i--) {
    if (!isTrusted(forwardedFor[i], trustedProxies)) return forwardedFor[i];
  }
  return forwardedFor[0];
}

// 16 hex digits of fresh randomness per ray (a counter would tell tenants how busy the shard is),
// drawn from a pool filled 64 rays at a time.
const RAY_POOL = new Uint32Array(128);
let rayNext = RAY_POOL.length;

function rayId() {
  if (rayNext >= RAY_POOL.length) {
    crypto.getRandomValues(RAY_POOL);
    rayNext = 0;
  }
  const high = RAY_POOL[rayNext++].toString(16).padStart(8, "0");
  return high + RAY_POOL[rayNext++].toString(16).padStart(8, "0");
}
