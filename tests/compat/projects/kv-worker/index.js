// What the compat tests ask of a deployed Worker, through the data plane:
//   /kv/get?key=K          env.CACHE.get(K) ("<missing>" when null)
//   /kv/meta?key=K         env.CACHE.getWithMetadata(K) as JSON
//   /kv/put?key=K&value=V  env.CACHE.put(K, V)
//   /secret?name=N         env[N] ("<unset>" when absent)
//   /throw                 logs a line, then throws (for wrangler tail)
//   anything else          logs one line (for wrangler tail) and says hello
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.searchParams.get("key");
    switch (url.pathname) {
      case "/kv/get":
        return new Response((await env.CACHE.get(key)) ?? "<missing>");
      case "/kv/meta":
        return Response.json(await env.CACHE.getWithMetadata(key));
      case "/kv/put":
        await env.CACHE.put(key, url.searchParams.get("value"));
        return new Response("stored");
      case "/secret":
        return new Response(env[url.searchParams.get("name")] ?? "<unset>");
      case "/throw":
        console.log("about to throw");
        throw new Error("thrown for the tail");
      default:
        console.log(`tail line ${url.pathname}`);
        return new Response("hello");
    }
  },
};
