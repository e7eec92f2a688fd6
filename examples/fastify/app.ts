// A Fastify application under tsgi; the same file runs as
//   tsgi serve examples/fastify/app.ts
//   tsgi cgi examples/fastify/app.ts                    (from a web server's CGI)
//   tsgi fcgi examples/fastify/app.ts --listen app.sock (behind nginx, Apache, lighttpd)
// Fastify is not listening itself: once `ready()`, `app.routing` is its
// (req, res) request handler, which fromNodeHandler serves. Routes are
// relative to where the app is mounted (SCRIPT_NAME); the adapter puts the
// mount point on the raw request as `baseUrl`.

import type { IncomingMessage } from "node:http";
import { PassThrough } from "node:stream";
import Fastify from "fastify";
import { fromNodeHandler } from "tsgi";

/** The mount point, which fromNodeHandler sets on the request. */
function baseUrl(req: IncomingMessage): string {
  return (req as IncomingMessage & { baseUrl?: string }).baseUrl ?? "";
}

// Under `tsgi cgi` stdout is the response: Fastify's log goes to stderr.
const app = Fastify({ logger: { level: "warn", stream: process.stderr } });

app.get("/", (request, reply) =>
  reply.type("text/plain").send(`Hello from Fastify, mounted at "${baseUrl(request.raw)}"!\n`),
);

app.get<{ Params: { id: string } }>("/users/:id", (request) => ({
  id: request.params.id,
  query: request.query,
  url: request.originalUrl,
}));

app.post("/echo", (request) => ({ youSent: request.body }));

app.get("/login", (request, reply) =>
  reply
    .header("Set-Cookie", ["session=s3cr3t; Path=/; HttpOnly; SameSite=Lax", "theme=dark; Path=/"])
    .redirect(`${baseUrl(request.raw)}/users/me`),
);

// Each line reaches the client as it is written (behind nginx: fastcgi_buffering off).
app.get("/countdown", (_request, reply) => {
  const body = new PassThrough();
  void (async () => {
    for (let n = 3; n > 0; n--) {
      body.write(`${n}…\n`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    body.end("liftoff\n");
  })();
  return reply.type("text/plain").send(body);
});

await app.ready();

export default fromNodeHandler((req, res) => app.routing(req, res));
