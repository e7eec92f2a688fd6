#!/usr/bin/env node
// CPU cost of a Hono app behind fromFetchHandler, without sockets or a web
// server: an nginx-shaped environ is handed to the engine with a sink that
// drops the output, `concurrency` requests in flight at a time. For comparing
// changes to the fetch adapter (and for `node --cpu-prof`); not a throughput figure.
//
// usage: node bench/fetch-inproc.js [requests] [--concurrency N]
//   (default 100000 requests, 16 in flight; run `npm run build` first)

import { Hono } from "hono";
import { PassThrough } from "node:stream";
import { fromFetchHandler } from "../dist/adapters/fetch.js";
import { runApplication } from "../dist/engine.js";
import { makeEnviron } from "../dist/environ.js";
import { commandLine, positive } from "./lib/cli.js";

const SCRIPT = "bench/fetch-inproc.js";
const USAGE =
  "usage: node bench/fetch-inproc.js [requests] [--concurrency N] [--path /hello|/json]";
const { values, positionals } = commandLine(
  SCRIPT,
  USAGE,
  { concurrency: { type: "string" }, path: { type: "string" } },
  1,
);
const count = positive(positionals[0], 100000, {
  script: SCRIPT,
  usage: USAGE,
  name: "requests",
  whole: true,
});
const concurrency = positive(values.concurrency, 16, {
  script: SCRIPT,
  usage: USAGE,
  name: "concurrency",
  whole: true,
});
const hono = new Hono();
hono.get("/hello", (c) => c.text("Hello, World!"));
hono.get("/json", (c) => c.json({ hello: "world", n: 1 }));
const app = fromFetchHandler(hono.fetch);

const path = values.path ?? "/hello";
const vars = {
  SCRIPT_FILENAME: "/srv/www/index",
  QUERY_STRING: "",
  REQUEST_METHOD: "GET",
  CONTENT_TYPE: "",
  CONTENT_LENGTH: "",
  SCRIPT_NAME: "",
  PATH_INFO: path,
  REQUEST_URI: path,
  DOCUMENT_URI: path,
  DOCUMENT_ROOT: "/srv/www",
  SERVER_PROTOCOL: "HTTP/1.1",
  REQUEST_SCHEME: "http",
  GATEWAY_INTERFACE: "CGI/1.1",
  SERVER_SOFTWARE: "nginx/1.22.1",
  REMOTE_ADDR: "127.0.0.1",
  REMOTE_PORT: "40000",
  SERVER_ADDR: "127.0.0.1",
  SERVER_PORT: "8080",
  SERVER_NAME: "localhost",
  REDIRECT_STATUS: "200",
  HTTP_HOST: "127.0.0.1:8080",
  HTTP_USER_AGENT: "wrk",
  HTTP_ACCEPT: "*/*",
};
const input = new PassThrough().end();
const errors = process.stderr;
let bytes = 0;
/** @type {import("../src/engine.js").ResponseSink} */
const sink = {
  sendHeaders() {},
  write(data) {
    bytes += data.length;
  },
  end() {},
  sendWhole(_status, _headers, body) {
    for (const chunk of body) bytes += chunk.length;
    return true;
  },
  abort(reason) {
    throw reason;
  },
};

/** @param {number} share */
async function worker(share) {
  for (let i = 0; i < share; i++) {
    const environ = makeEnviron(
      { ...vars },
      { input, errors, multithread: false, multiprocess: false, runOnce: false },
    );
    const outcome = await runApplication(app, environ, sink);
    if (outcome !== "complete") throw new Error(`request ended ${outcome}`);
  }
}

const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, () => worker(Math.ceil(count / concurrency))),
);
const seconds = (performance.now() - started) / 1000;
const done = Math.ceil(count / concurrency) * concurrency;
console.log(
  `${path}: ${Math.round(done / seconds)} requests/s (${done} in ${seconds.toFixed(2)} s, ${bytes} body bytes)`,
);
