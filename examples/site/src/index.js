export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/api/visits") {
      const visits = Number((await env.COUNTER.get("visits")) ?? "0") + 1;
      await env.COUNTER.put("visits", String(visits));
      return Response.json({ visits });
    }
    return env.ASSETS.fetch(request);
  },
};
