// URL routing on the bare TSGI interface, no framework: a ten-line router
// matches PATH_INFO, and mount() puts a small JSON API under /api.
//
//   npm run build && tsgi serve examples/router.js
//   GET /  ·  GET /hello/<name>  ·  GET /api/  ·  POST /api/echo

import { mount, utf8 } from "tsgi";

/** @typedef {import("tsgi").Application} Application */
/** @typedef {import("tsgi").Environ} Environ */
/** @typedef {import("tsgi").StartResponse} StartResponse */
/** @typedef {import("tsgi").Body} Body */
/**
 * @typedef {(environ: Environ, startResponse: StartResponse, params: Record<string, string>) => Body | Promise<Body>} Handler
 * @typedef {[method: string, pattern: string, handler: Handler]} Route
 */

const MAX_BODY = 64 * 1024;

/**
 * Builds an application from routes. A pattern is a path whose `:name`
 * segments match any one segment; the handler gets them as `params`, read as
 * UTF-8 (environ strings hold bytes as Latin-1 characters).
 * A known path with another method gets 405 and an Allow header.
 * @param {Route[]} routes
 * @returns {Application}
 */
function router(routes) {
  const compiled = routes.map(([method, pattern, handler]) => {
    const source = pattern
      .replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      .replace(/:(\w+)/g, "(?<$1>[^/]+)");
    return { method, regex: new RegExp(`^${source}$`), handler };
  });
  return (environ, startResponse) => {
    const path = environ.PATH_INFO || "/";
    const allowed = [];
    for (const { method, regex, handler } of compiled) {
      const match = regex.exec(path);
      if (!match) continue;
      if (method !== environ.REQUEST_METHOD) {
        allowed.push(method);
        continue;
      }
      /** @type {Record<string, string>} */
      const params = {};
      for (const [name, value] of Object.entries(match.groups ?? {})) params[name] = utf8(value);
      return handler(environ, startResponse, params);
    }
    if (allowed.length > 0)
      return text(startResponse, "405 Method Not Allowed", "Method Not Allowed\n", [
        ["Allow", allowed.join(", ")],
      ]);
    return text(startResponse, "404 Not Found", "Not Found\n");
  };
}

/**
 * @param {StartResponse} startResponse
 * @param {string} status
 * @param {string} body
 * @param {[string, string][]} [extraHeaders]
 * @returns {Body}
 */
function text(startResponse, status, body, extraHeaders = []) {
  const bytes = Buffer.from(body, "utf8");
  startResponse(status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(bytes.length)],
    ...extraHeaders,
  ]);
  return [bytes];
}

/**
 * @param {StartResponse} startResponse
 * @param {unknown} value
 * @returns {Body}
 */
function json(startResponse, value) {
  const bytes = Buffer.from(JSON.stringify(value) + "\n", "utf8");
  startResponse("200 OK", [
    ["Content-Type", "application/json"],
    ["Content-Length", String(bytes.length)],
  ]);
  return [bytes];
}

/**
 * Reads the request body, or returns undefined when it is larger than `limit`
 * (checked against CONTENT_LENGTH first, so an oversized body is not read at all).
 * @param {Environ} environ
 * @param {number} limit
 * @returns {Promise<Buffer | undefined>}
 */
async function readBody(environ, limit) {
  if (Number(environ.CONTENT_LENGTH || 0) > limit) return undefined;
  const chunks = [];
  let size = 0;
  for await (const chunk of environ["tsgi.input"]) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const site = router([
  [
    "GET",
    "/",
    (_environ, startResponse) =>
      text(startResponse, "200 OK", "Routes: GET /hello/<name>, GET /api/, POST /api/echo\n"),
  ],
  [
    "GET",
    "/hello/:name",
    (_environ, startResponse, { name }) => text(startResponse, "200 OK", `Hello, ${name}!\n`),
  ],
]);

const api = router([
  // SCRIPT_NAME is where mount() put this application, so links stay right wherever it is mounted.
  [
    "GET",
    "/",
    (environ, startResponse) => json(startResponse, { echo: `${environ.SCRIPT_NAME}/echo` }),
  ],
  [
    "POST",
    "/echo",
    async (environ, startResponse) => {
      const body = await readBody(environ, MAX_BODY);
      if (body === undefined)
        return text(
          startResponse,
          "413 Content Too Large",
          `The body may have at most ${MAX_BODY} bytes\n`,
        );
      return json(startResponse, { bytes: body.length, text: body.toString("utf8") });
    },
  ],
]);

/** @type {Application} */
export default mount({ "/": site, "/api": api });
