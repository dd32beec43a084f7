// GET /write?name=N: a row in D1, an object in R2 and a greeting over the service binding, all
// about N; GET /read?name=N: what the Worker finds of N in D1 and R2.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name");
    await env.DB.exec("CREATE TABLE IF NOT EXISTS visits (name TEXT PRIMARY KEY, greeting TEXT)");
    if (url.pathname === "/write") {
      const greeting = await env.GREETER.greet(name);
      await env.DB.prepare("INSERT OR REPLACE INTO visits VALUES (?1, ?2)").bind(name, greeting).run();
      await env.FILES.put(`visits/${name}.txt`, greeting, { httpMetadata: { contentType: "text/plain" } });
      return new Response(greeting);
    }
    const row = await env.DB.prepare("SELECT greeting FROM visits WHERE name = ?1").bind(name).first();
    const object = await env.FILES.get(`visits/${name}.txt`);
    return Response.json({ d1: row?.greeting ?? null, r2: object === null ? null : await object.text() });
  },
};
