// The Koa hello of bench/apps.js: "Hello, world!" as text/plain on GET /.
import Koa from "koa";

export function create() {
  const app = new Koa();
  app.use((ctx) => {
    if (ctx.method !== "GET" || ctx.path !== "/") return;
    ctx.type = "text/plain";
    ctx.body = "Hello, world!";
  });
  return app;
}
