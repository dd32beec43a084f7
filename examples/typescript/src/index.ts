import { greet } from "./greet";

export interface Env {
  GREETING: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const name = new URL(request.url).searchParams.get("name") ?? "world";
    console.log(`greeting ${name}`);
    return new Response(greet(env.GREETING, name));
  },
};
