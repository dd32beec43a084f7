// What the compat tests ask of a deployed Worker with a D1 binding (env.DB), through the data plane:
//   /notes                 every note, as JSON (SELECT … ORDER BY id)
//   /add?text=T            INSERT a note with prepare().bind().run(); answers its id
//   /batch?text=T          two INSERTs in one batch(); answers the row count after it
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const text = url.searchParams.get("text");
    switch (url.pathname) {
      case "/notes": {
        const { results } = await env.DB.prepare("SELECT id, body FROM notes ORDER BY id").all();
        return Response.json(results);
      }
      case "/add": {
        const { meta } = await env.DB.prepare("INSERT INTO notes (body) VALUES (?)").bind(text).run();
        return new Response(String(meta.last_row_id));
      }
      case "/batch": {
        await env.DB.batch([
          env.DB.prepare("INSERT INTO notes (body) VALUES (?1)").bind(`${text} 1`),
          env.DB.prepare("INSERT INTO notes (body) VALUES (?1)").bind(`${text} 2`),
        ]);
        return new Response(String(await env.DB.prepare("SELECT count(*) AS n FROM notes").first("n")));
      }
      default:
        return new Response("hello");
    }
  },
};
