// The Hono hello of bench/apps.js: "Hello, world!" as text/plain on GET /.
import { Hono } from "hono";

export function create() {
  const app = new Hono();
  app.get("/", (c) => c.text("Hello, world!"));
  return app;
}
