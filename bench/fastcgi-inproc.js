#!/usr/bin/env node
// CPU cost of one FastCGI request inside tsgi, without sockets or a web server:
// an nginx-shaped request (BEGIN_REQUEST, 30 params, empty STDIN) is fed to a
// connection over a fake socket, and the app's response is collected. Stable
// enough to compare changes to the request path; not a throughput figure.
//
// usage: node bench/fastcgi-inproc.js [requests]   (default 200000, also --requests N; run `npm run build` first)

import { EventEmitter } from "node:events";
import { FastCgiConnection } from "../dist/fastcgi/connection.js";
import { encodeBeginRequest, encodeRecord, encodeEndOfStream } from "../dist/fastcgi/records.js";
import {
  encodeNameValuePairs,
  RecordType,
  Role,
  FCGI_KEEP_CONN,
} from "../dist/fastcgi/protocol.js";
import { commandLine, positive } from "./lib/cli.js";

const SCRIPT = "bench/fastcgi-inproc.js";
const USAGE =
  "usage: node bench/fastcgi-inproc.js [requests]   (default 200000; also --requests N)";
const { values, positionals } = commandLine(SCRIPT, USAGE, { requests: { type: "string" } }, 1);
const count = positive(values.requests ?? positionals[0], 200000, {
  script: SCRIPT,
  usage: USAGE,
  name: "requests",
  whole: true,
});
/** @type {[string, string][]} */
const params = [
  ["SCRIPT_FILENAME", "/srv/www/index"],
  ["QUERY_STRING", ""],
  ["REQUEST_METHOD", "GET"],
  ["CONTENT_TYPE", ""],
  ["CONTENT_LENGTH", ""],
  ["SCRIPT_NAME", "/"],
  ["REQUEST_URI", "/"],
  ["DOCUMENT_URI", "/"],
  ["DOCUMENT_ROOT", "/srv/www"],
  ["SERVER_PROTOCOL", "HTTP/1.1"],
  ["REQUEST_SCHEME", "http"],
  ["GATEWAY_INTERFACE", "CGI/1.1"],
  ["SERVER_SOFTWARE", "nginx/1.22.1"],
  ["REMOTE_ADDR", "127.0.0.1"],
  ["REMOTE_PORT", "40000"],
  ["SERVER_ADDR", "127.0.0.1"],
  ["SERVER_PORT", "8080"],
  ["SERVER_NAME", "localhost"],
  ["REDIRECT_STATUS", "200"],
  ["HTTP_HOST", "127.0.0.1:8080"],
  ["HTTP_USER_AGENT", "wrk"],
  ["HTTP_ACCEPT", "*/*"],
];
const request = Buffer.concat([
  encodeRecord(RecordType.BEGIN_REQUEST, 1, encodeBeginRequest(Role.RESPONDER, FCGI_KEEP_CONN)),
  encodeRecord(RecordType.PARAMS, 1, encodeNameValuePairs(params)),
  encodeEndOfStream(RecordType.PARAMS, 1),
  encodeEndOfStream(RecordType.STDIN, 1),
]);

class FakeSocket extends EventEmitter {
  writableLength = 0;
  writableNeedDrain = false;
  written = 0;
  /** @param {Buffer} bytes */
  write(bytes) {
    this.written += bytes.length;
    return true;
  }
  cork() {}
  uncork() {}
  end() {}
  destroy() {}
  pause() {}
  resume() {}
}

/** @type {import("../src/types.js").Application} */
const app = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  return ["Hello, world!\n"];
};

let done = 0;
const options = {
  maxConnections: 1024,
  concurrency: 1024,
  maxRequestsPerConnection: 64,
  maxParamsBytes: 1 << 20,
  multiplex: true,
  receiveTimeout: 60000,
  errors: process.stderr,
  stderrToWebServer: false,
  multiprocess: false,
  // What serveFastCgi sets when its options leave them out.
  reclaimBodyMemory: false,
  requestTimeout: 0,
  slowRequest: 0,
  pages: undefined,
};
/** @type {() => void} */
let resolveAll = () => {};
const hooks = {
  admit: () => true,
  release: () => {
    if (++done === count) resolveAll();
  },
  requestFinished() {},
  connectionClosed() {},
  shuttingDown: false,
};
const socket = new FakeSocket();
new FastCgiConnection(
  /** @type {import("node:net").Socket} */ (/** @type {unknown} */ (socket)),
  options,
  hooks,
  app,
);

// One request at a time, as nginx sends them on a kept connection.
/** @param {number} n */
async function run(n) {
  done = 0;
  /** @type {Promise<void>} */
  const finished = new Promise((resolve) => (resolveAll = resolve));
  const pump = () => {
    socket.emit("data", request);
  };
  hooks.release = () => {
    if (++done === n) resolveAll();
    else setImmediate(pump);
  };
  const start = process.hrtime.bigint();
  pump();
  await finished;
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

await run(Math.min(20000, count)); // warm up
const rounds = [];
for (let i = 0; i < 5; i++) rounds.push(await run(count / 5));
rounds.sort((a, b) => a - b);
console.log(
  `median ${(rounds[2] ?? NaN).toFixed(2)} µs per request (rounds: ${rounds.map((r) => r.toFixed(2)).join(", ")}), ${socket.written} bytes written`,
);
