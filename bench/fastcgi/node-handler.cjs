// The benchmark application as a node:http request handler, which both
// node-http-app.js (node:http behind proxy_pass) and node-fastcgi-app.cjs
// (node-fastcgi, whose requests and responses are node:http's) serve; the
// same logic as tsgi-app.js. CommonJS, so that both can load it.
"use strict";
const { createHash } = require("node:crypto");

const HELLO = "Hello, world!\n";
const HELLO_LENGTH = String(Buffer.byteLength(HELLO));

/**
 * Answers the body's length and SHA-256, reading it `?delay=` ms late.
 * @param {import("node:http").IncomingMessage} req
 * @param {import("node:http").ServerResponse} res
 */
async function upload(req, res) {
  const delay = Number(/[?&]delay=([0-9]+)/.exec(req.url ?? "")?.[1] ?? 0);
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  const hash = createHash("sha256");
  let length = 0;
  for await (const chunk of /** @type {AsyncIterable<Buffer>} */ (req)) {
    hash.update(chunk);
    length += chunk.length;
  }
  const body = `${length} ${hash.digest("hex")}\n`;
  res.writeHead(200, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/**
 * GET: the hello world; POST: the upload.
 * @param {import("node:http").IncomingMessage} req
 * @param {import("node:http").ServerResponse} res
 */
function handle(req, res) {
  if (req.method === "POST") {
    upload(req, res).catch((/** @type {unknown} */ error) => {
      process.stderr.write(`upload failed: ${String(error)}\n`);
      res.destroy();
    });
    return;
  }
  res.writeHead(200, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": HELLO_LENGTH,
  });
  res.end(HELLO);
}

module.exports = handle;
