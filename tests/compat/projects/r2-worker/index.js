// What the compat tests ask of a deployed Worker, through the data plane:
//   /r2/get?key=K            the object's text and content type ("<missing>" when null)
//   /r2/put?key=K&value=V    env.MEDIA.put(K, V) as text/plain with customMetadata
//   /r2/list?prefix=P        the keys under P
//   /svc/fetch               env.BACKEND.fetch() (service binding, default entrypoint)
//   /svc/rpc?name=N          env.GREETER.greet(N) (RPC to the Greeter entrypoint)
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.searchParams.get("key");
    switch (url.pathname) {
      case "/r2/get": {
        const object = await env.MEDIA.get(key);
        if (object === null) return new Response("<missing>");
        const headers = new Headers();
        object.writeHttpMetadata(headers);
        headers.set("etag", object.httpEtag);
        return new Response(object.body, { headers });
      }
      case "/r2/put": {
        const stored = await env.MEDIA.put(key, url.searchParams.get("value"), {
          httpMetadata: { contentType: "text/plain" },
          customMetadata: { by: "worker" },
        });
        return new Response(`stored ${stored.size} ${stored.etag}`);
      }
      case "/r2/list": {
        const listed = await env.MEDIA.list({ prefix: url.searchParams.get("prefix") ?? "" });
        return Response.json(listed.objects.map((o) => o.key));
      }
      case "/svc/fetch":
        return env.BACKEND.fetch("https://backend/from-the-binding", { method: "POST" });
      case "/svc/rpc":
        return new Response(await env.GREETER.greet(url.searchParams.get("name")));
      default:
        return new Response("r2-worker");
    }
  },
};
