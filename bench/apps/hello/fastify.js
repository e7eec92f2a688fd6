// The Fastify hello of bench/apps.js: "Hello, world!" as text/plain on GET /.
import Fastify from "fastify";

export function create() {
  const app = Fastify();
  app.get("/", (_request, reply) => {
    void reply.type("text/plain").send("Hello, world!");
  });
  return app;
}
