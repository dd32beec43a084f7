export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/api/home") {
      // The assets binding: the home page as the asset-worker serves it.
      const home = await env.ASSETS.fetch(new URL("/", url));
      return new Response(`from the binding: ${home.status} ${await home.text()}`);
    }
    return Response.json({ worker: true, path: url.pathname });
  },
};
