// A Hono application under tsgi; the same file runs as
//   tsgi serve examples/hono/app.ts
//   tsgi cgi examples/hono/app.ts                    (from a web server's CGI)
//   tsgi fcgi examples/hono/app.ts --listen app.sock (behind nginx, Apache, lighttpd)
// The Request's path is relative to where the app is mounted (PATH_INFO), and
// the environ is the handler's second argument, Hono's `c.env`: SCRIPT_NAME is
// the mount point, for links and redirects.

import { Hono } from "hono";
import { setCookie } from "hono/cookie";
import { streamText } from "hono/streaming";
import { fromFetchHandler } from "tsgi";

/** The environ, as far as this app reads it (undefined when the app is called outside tsgi). */
type Environ = { SCRIPT_NAME?: string } | undefined;

const app = new Hono<{ Bindings: Environ }>();

/** The mount point, from the environ. */
const mountedAt = (env: Environ) => env?.SCRIPT_NAME ?? "";

app.get("/", (c) => c.text(`Hello from Hono, mounted at "${mountedAt(c.env)}"!\n`));

app.get("/users/:id", (c) =>
  c.json({ id: c.req.param("id"), query: c.req.query(), url: mountedAt(c.env) + c.req.path }),
);

app.post("/echo", async (c) => c.json({ youSent: await c.req.json<unknown>() }));

app.get("/login", (c) => {
  setCookie(c, "session", "s3cr3t", { path: "/", httpOnly: true, sameSite: "Lax" });
  setCookie(c, "theme", "dark", { path: "/" });
  return c.redirect(`${mountedAt(c.env)}/users/me`);
});

// Each line reaches the client as it is written (behind nginx: fastcgi_buffering off).
app.get("/countdown", (c) =>
  streamText(c, async (stream) => {
    for (let n = 3; n > 0; n--) {
      await stream.writeln(`${n}…`);
      await stream.sleep(300);
    }
    await stream.writeln("liftoff");
  }),
);

export default fromFetchHandler(app.fetch);
