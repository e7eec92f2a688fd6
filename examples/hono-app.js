// A Hono application served through TSGI: the same file runs under
// `tsgi cgi`, `tsgi fcgi` and `tsgi serve` (try: tsgi serve examples/hono-app.js).
// Its routes are relative to where it is mounted (PATH_INFO); the environ is
// `c.env`, so SCRIPT_NAME says where that is.

import { Hono } from "hono";
import { setCookie } from "hono/cookie";
import { streamText } from "hono/streaming";
import { fromFetchHandler } from "tsgi/fetch";

/** @type {Hono<{ Bindings: import("tsgi/fetch").Environ }>} */
const app = new Hono();

app.get("/", (c) => c.text("Hello from Hono!\n"));

app.post("/echo", async (c) => c.json({ youSent: await c.req.json() }));

app.get("/login", (c) => {
  setCookie(c, "session", "s3cr3t", { path: "/", httpOnly: true, sameSite: "Lax" });
  setCookie(c, "theme", "dark", { path: "/" });
  return c.redirect(`${c.env.SCRIPT_NAME}/`);
});

// Streams: each line reaches the client as it is written.
app.get("/countdown", (c) =>
  streamText(c, async (stream) => {
    for (let n = 3; n > 0; n--) {
      await stream.writeln(`${n}…`);
      await stream.sleep(500);
    }
    await stream.writeln("liftoff");
  }),
);

export default fromFetchHandler(app.fetch);
