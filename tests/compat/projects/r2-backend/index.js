import { WorkerEntrypoint } from "cloudflare:workers";

export class Greeter extends WorkerEntrypoint {
  async greet(name) {
    return `hello ${name}, from the backend`;
  }
}

export default {
  async fetch(request) {
    return new Response(`backend saw ${request.method} ${new URL(request.url).pathname}`);
  },
};
