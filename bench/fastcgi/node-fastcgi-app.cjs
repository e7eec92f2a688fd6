// The benchmark application on node-fastcgi (bench/fastcgi.js); same logic as
// tsgi-app.js. usage: node node-fastcgi-app.cjs <port>   (listens on 127.0.0.1)
"use strict";
const { createHash } = require("node:crypto");
const fcgi = require("node-fastcgi");

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

fcgi
  .createServer((req, res) => {
    if (req.method === "POST") {
      upload(req, res).catch((error) => {
        process.stderr.write(`upload failed: ${error}\n`);
        res.destroy?.();
      });
      return;
    }
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": HELLO_LENGTH,
    });
    res.end(HELLO);
  })
  .listen(Number(process.argv[2]), "127.0.0.1");

// Exit cleanly on SIGTERM (so that `node --cpu-prof` writes its profile).
process.on("SIGTERM", () => process.exit(0));
