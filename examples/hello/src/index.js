// The entry module: answers every request with a greeting built by ./lib/greet.js.
import { greet } from "./lib/greet.js";

export default {
  async fetch(request, env) {
    const who = new URL(request.url).searchParams.get("name") ?? "world";
    return new Response(greet(env.GREETING, who) + "\n", {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
