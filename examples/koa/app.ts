// A Koa application (with @koa/router) under tsgi; the same file runs as
//   tsgi serve examples/koa/app.ts
//   tsgi cgi examples/koa/app.ts                    (from a web server's CGI)
//   tsgi fcgi examples/koa/app.ts --listen app.sock (behind nginx, Apache, lighttpd)
// Routes are relative to where the app is mounted (SCRIPT_NAME); the adapter
// puts the mount point on the request as `baseUrl`, as Express has it.

import type { IncomingMessage } from "node:http";
import { PassThrough } from "node:stream";
import Koa from "koa";
import Router from "@koa/router";
import { fromNodeHandler } from "tsgi";

/** The mount point, which fromNodeHandler sets on the request. */
function baseUrl(req: IncomingMessage): string {
  return (req as IncomingMessage & { baseUrl?: string }).baseUrl ?? "";
}

/** Koa has no body parser of its own: a JSON one in a few lines. */
async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const app = new Koa();
const router = new Router();

router.get("/", (ctx) => {
  ctx.body = `Hello from Koa, mounted at "${baseUrl(ctx.req)}"!\n`;
});

router.get("/users/:id", (ctx) => {
  ctx.body = { id: ctx.params.id, query: ctx.query, url: baseUrl(ctx.req) + ctx.url };
});

router.post("/echo", async (ctx) => {
  ctx.body = { youSent: await jsonBody(ctx.req) };
});

router.get("/login", (ctx) => {
  ctx.cookies.set("session", "s3cr3t", { httpOnly: true, sameSite: "lax" });
  ctx.cookies.set("theme", "dark", { httpOnly: false });
  ctx.redirect(`${baseUrl(ctx.req)}/users/me`);
});

// Each line reaches the client as it is written (behind nginx: fastcgi_buffering off).
router.get("/countdown", (ctx) => {
  const body = new PassThrough();
  ctx.type = "text/plain";
  ctx.body = body;
  void (async () => {
    for (let n = 3; n > 0; n--) {
      body.write(`${n}…\n`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    body.end("liftoff\n");
  })();
});

app.use(router.routes());
app.use(router.allowedMethods());

export default fromNodeHandler(app.callback());
