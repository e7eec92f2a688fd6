// The benchmark application for `tsgi fcgi` (bench/fastcgi.js).
//   GET  anything           -> "Hello, world!\n", text/plain, Content-Length
//   POST /?delay=<ms>       -> waits <ms>, then reads the body through SHA-256
//                              and answers "<length> <sha256 hex>\n"
// node-handler.cjs (for node-fastcgi and node:http) and go-fcgi.go do exactly the same.

import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const HELLO = "Hello, world!\n";
const HELLO_LENGTH = String(Buffer.byteLength(HELLO));

/** @type {import("tsgi").Application} */
export default function app(environ, startResponse) {
  if (environ.REQUEST_METHOD === "POST") return upload(environ, startResponse);
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", HELLO_LENGTH],
  ]);
  return [HELLO];
}

/** @type {import("tsgi").Application} */
async function upload(environ, startResponse) {
  const delay = Number(/(?:^|&)delay=([0-9]+)/.exec(environ.QUERY_STRING)?.[1] ?? 0);
  if (delay > 0) await sleep(delay);
  const hash = createHash("sha256");
  let length = 0;
  for await (const chunk of environ["tsgi.input"]) {
    hash.update(chunk);
    length += chunk.length;
  }
  const body = `${length} ${hash.digest("hex")}\n`;
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(Buffer.byteLength(body))],
  ]);
  return [body];
}
