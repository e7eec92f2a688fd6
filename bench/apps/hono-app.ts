// The Hono app bench/cgi-startup.js starts, under `tsgi cgi` and built by `tsgi build`.
import { Hono } from "hono";
import { fromFetchHandler } from "tsgi/fetch";

const app = new Hono();
app.get("/hello", (c) => c.text("hello from hono\n"));

export default fromFetchHandler(app.fetch);
