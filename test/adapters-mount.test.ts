// An Express application adapted with fromNodeHandler routes on PATH_INFO and
// knows where it is mounted (SCRIPT_NAME): under a prefix, behind a rewrite,
// inside mount(), and through toNodeHandler inside another Express app.
// Express 4 and 5 both, since each keeps an incoming baseUrl/originalUrl its own way.

import express5 from "express";
// express4 is express@4 under another name; its API is the one @types/express describes.
// @ts-expect-error -- the alias has no type declarations of its own
import express4Untyped from "express4";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fromNodeHandler, toNodeHandler } from "../src/adapters/index.js";
import { mount } from "../src/middleware.js";
import { start } from "./helpers/engine-harness.js";

type Express = typeof express5;
const express4 = express4Untyped as Express;

const STATIC_DIR = mkdtempSync(join(tmpdir(), "tsgi-mount-"));
mkdirSync(join(STATIC_DIR, "docs"));
writeFileSync(join(STATIC_DIR, "docs", "index.html"), "docs\n");

/** An Express app with routes at its own root that reports how it saw the request. */
function makeApp(express: Express) {
  const app = express();
  app.get("/users/:id", (req, res) => {
    res.json({
      id: req.params.id,
      url: req.url,
      path: req.path,
      baseUrl: req.baseUrl,
      originalUrl: req.originalUrl,
      full: req.baseUrl + req.path,
    });
  });
  app.get("/", (req, res) => {
    res.json({ url: req.url, baseUrl: req.baseUrl, originalUrl: req.originalUrl });
  });
  app.get("/pkg/:name", (req, res) => {
    res.json({ name: req.params.name });
  });
  app.get("/old", (req, res) => {
    res.redirect(req.baseUrl + "/users/1");
  });
  const router = express.Router();
  router.get("/item", (req, res) => {
    res.json({ baseUrl: req.baseUrl, originalUrl: req.originalUrl, full: req.baseUrl + req.path });
  });
  app.use("/shop", router);
  app.use(express.static(STATIC_DIR));
  return app;
}

async function request(
  app: Parameters<typeof start>[0],
  vars: Record<string, string>,
): Promise<{ status: string; headers: [string, string][]; body: string }> {
  const run = start(app, vars);
  const outcome = await run.outcome;
  expect(outcome, run.errors.text).toBe("complete");
  return { status: run.sink.status!, headers: run.sink.headers, body: run.sink.body() };
}

const header = (headers: [string, string][], name: string) =>
  headers.find(([key]) => key.toLowerCase() === name)?.[1];

for (const [version, express] of [
  ["Express 4", express4],
  ["Express 5", express5],
] as const) {
  describe(`${version} through fromNodeHandler`, () => {
    const app = fromNodeHandler(makeApp(express));

    it("routes on PATH_INFO under a prefix; baseUrl and originalUrl name the public URL", async () => {
      const response = await request(app, {
        SCRIPT_NAME: "/api",
        PATH_INFO: "/users/7",
        QUERY_STRING: "x=1",
        REQUEST_URI: "/api/users/7?x=1",
      });
      expect(response.status).toBe("200 OK");
      expect(JSON.parse(response.body)).toEqual({
        id: "7",
        url: "/users/7?x=1",
        path: "/users/7",
        baseUrl: "/api",
        originalUrl: "/api/users/7?x=1",
        full: "/api/users/7",
      });
    });

    it("keeps the mount point in baseUrl for a router mounted inside the app", async () => {
      const response = await request(app, {
        SCRIPT_NAME: "/api",
        PATH_INFO: "/shop/item",
        REQUEST_URI: "/api/shop/item",
      });
      expect(JSON.parse(response.body)).toEqual({
        baseUrl: "/api/shop",
        originalUrl: "/api/shop/item",
        full: "/api/shop/item",
      });
    });

    it("answers its root at the mount point itself (PATH_INFO empty)", async () => {
      const response = await request(app, { SCRIPT_NAME: "/api", PATH_INFO: "" });
      expect(JSON.parse(response.body)).toEqual({ url: "/", baseUrl: "/api", originalUrl: "/api" });
    });

    it("behind a rewrite (.htaccess: /dir/users/7 → app.cgi/users/7) routes on PATH_INFO", async () => {
      const response = await request(app, {
        SCRIPT_NAME: "/dir/app.cgi",
        PATH_INFO: "/users/7",
        REQUEST_URI: "/dir/users/7",
      });
      expect(response.status).toBe("200 OK");
      expect(JSON.parse(response.body)).toMatchObject({ id: "7", path: "/users/7" });
    });

    it("sees an escaped slash as the client sent it, from REQUEST_URI", async () => {
      const response = await request(app, {
        PATH_INFO: "/pkg/@scope/name",
        REQUEST_URI: "/pkg/@scope%2Fname",
      });
      expect(JSON.parse(response.body)).toEqual({ name: "@scope/name" });
    });

    it("redirects to public URLs: res.redirect from baseUrl, serve-static's trailing slash from originalUrl", async () => {
      const redirect = await request(app, {
        SCRIPT_NAME: "/api",
        PATH_INFO: "/old",
        REQUEST_URI: "/api/old",
      });
      expect(redirect.status).toMatch(/^302 /);
      expect(header(redirect.headers, "location")).toBe("/api/users/1");
      const directory = await request(app, {
        SCRIPT_NAME: "/api",
        PATH_INFO: "/docs",
        REQUEST_URI: "/api/docs",
      });
      expect(directory.status).toMatch(/^301 /);
      expect(header(directory.headers, "location")).toBe("/api/docs/");
    });

    it("composes with mount(): the prefix moves to SCRIPT_NAME and the app routes on the rest", async () => {
      const composed = mount({ "/api": app });
      const response = await request(composed, {
        SCRIPT_NAME: "/site",
        PATH_INFO: "/api/users/7",
        REQUEST_URI: "/site/api/users/7",
      });
      expect(JSON.parse(response.body)).toMatchObject({
        id: "7",
        url: "/users/7",
        baseUrl: "/site/api",
        originalUrl: "/site/api/users/7",
      });
    });
  });

  describe(`${version}: toNodeHandler(fromNodeHandler(app)) mounted under a prefix of another app`, () => {
    let close: (() => void) | undefined;
    afterEach(() => close?.());

    async function get(
      listener: RequestListener,
      path: string,
    ): Promise<{ status: number; location?: string; body: string }> {
      const server = createServer(listener);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      close = () => server.close();
      const { port } = server.address() as AddressInfo;
      return new Promise((resolve, reject) => {
        httpRequest({ host: "127.0.0.1", port, path, agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () =>
            resolve({ status: res.statusCode!, location: res.headers.location, body }),
          );
        })
          .on("error", reject)
          .end();
      });
    }

    it("the inner app sees the outer prefix as its mount point, in both directions", async () => {
      const outer = express();
      outer.use("/outer", toNodeHandler(fromNodeHandler(makeApp(express))));
      const listener = outer as unknown as RequestListener;
      const response = await get(listener, "/outer/users/7?q=%20");
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body)).toEqual({
        id: "7",
        url: "/users/7?q=%20",
        path: "/users/7",
        baseUrl: "/outer",
        originalUrl: "/outer/users/7?q=%20",
        full: "/outer/users/7",
      });
      const redirect = await get(listener, "/outer/docs");
      expect(redirect.status).toBe(301);
      expect(redirect.location).toBe("/outer/docs/");
    });
  });
}
