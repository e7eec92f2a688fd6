#!/usr/bin/env node
// CPU cost of an Express request through fromNodeHandler inside `tsgi fcgi`,
// without sockets or a web server: an nginx-shaped FastCGI request is fed to a
// connection over a fake socket, one at a time, and an Express 5 hello world
// answers through fromNodeHandler. Given several builds of tsgi (dist
// directories), it alternates rounds between them in one process, so a change
// to the adapter's request path can be compared on a shared machine.
//
// usage: node bench/node-adapter-inproc.js [--requests N] [--rounds R] [dist ...]
//        (default 20000 requests per round, 5 rounds, ./dist; run `npm run build` first)

import { EventEmitter } from "node:events";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import express from "express";

const { values, positionals } = parseArgs({
  options: { requests: { type: "string" }, rounds: { type: "string" } },
  allowPositionals: true,
});
const perRound = Number(values.requests ?? 20000);
const rounds = Number(values.rounds ?? 5);
const dists = positionals.length > 0 ? positionals : ["dist"];

/** @type {[string, string][]} */
const PARAMS = [
  ["SCRIPT_FILENAME", "/srv/www/index"],
  ["QUERY_STRING", ""],
  ["REQUEST_METHOD", "GET"],
  ["CONTENT_TYPE", ""],
  ["CONTENT_LENGTH", ""],
  ["SCRIPT_NAME", ""],
  ["PATH_INFO", "/"],
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

const OPTIONS = {
  maxConnections: 1024,
  concurrency: 1024,
  maxRequestsPerConnection: 64,
  maxParamsBytes: 1 << 20,
  multiplex: true,
  receiveTimeout: 60000,
  errors: process.stderr,
  stderrToWebServer: false,
  multiprocess: false,
  reclaimBodyMemory: false,
  requestTimeout: 0,
  slowRequest: 0,
  pages: undefined,
};

/**
 * A module of a build given on the command line, typed by the caller.
 * @param {string} url
 * @returns {Promise<unknown>}
 */
async function importUnknown(url) {
  /** @type {unknown} */
  const module = await import(url);
  return module;
}

/**
 * One build's connection serving the Express app; run(n) serves n requests and gives requests/s.
 * @param {string} dist
 */
async function load(dist) {
  const base = pathToFileURL(resolve(dist)).href;
  // Every build has the modules of this one (../dist), maybe with other insides.
  const { FastCgiConnection } = /** @type {typeof import("../dist/fastcgi/connection.js")} */ (
    await importUnknown(`${base}/fastcgi/connection.js`)
  );
  const records = /** @type {typeof import("../dist/fastcgi/records.js")} */ (
    await importUnknown(`${base}/fastcgi/records.js`)
  );
  const protocol = /** @type {typeof import("../dist/fastcgi/protocol.js")} */ (
    await importUnknown(`${base}/fastcgi/protocol.js`)
  );
  const { fromNodeHandler } = /** @type {typeof import("../dist/adapters/index.js")} */ (
    await importUnknown(`${base}/adapters/index.js`)
  );
  const { RecordType, Role, FCGI_KEEP_CONN } = protocol;
  const request = Buffer.concat([
    records.encodeRecord(
      RecordType.BEGIN_REQUEST,
      1,
      records.encodeBeginRequest(Role.RESPONDER, FCGI_KEEP_CONN),
    ),
    records.encodeRecord(RecordType.PARAMS, 1, protocol.encodeNameValuePairs(PARAMS)),
    records.encodeEndOfStream(RecordType.PARAMS, 1),
    records.encodeEndOfStream(RecordType.STDIN, 1),
  ]);
  const app = express();
  app.get("/", (_req, res) => {
    res.send("Hello World!");
  });
  let done = 0;
  let target = 0;
  /** @type {() => void} */
  let finish = () => {};
  const socket = new FakeSocket();
  const pump = () => socket.emit("data", request);
  const hooks = {
    admit: () => true,
    release: () => {
      if (++done === target) finish();
      else setImmediate(pump);
    },
    requestFinished() {},
    connectionClosed() {},
    shuttingDown: false,
  };
  new FastCgiConnection(
    /** @type {import("node:net").Socket} */ (/** @type {unknown} */ (socket)),
    OPTIONS,
    hooks,
    fromNodeHandler(app),
  );
  return {
    socket,
    /** @param {number} n */
    async run(n) {
      done = 0;
      target = n;
      const finished = new Promise((resolve) => (finish = () => resolve(undefined)));
      const start = process.hrtime.bigint();
      pump();
      await finished;
      return n / (Number(process.hrtime.bigint() - start) / 1e9);
    },
  };
}

/** @type {{ dist: string, bench: Awaited<ReturnType<typeof load>>, results: number[] }[]} */
const builds = [];
for (const dist of dists) builds.push({ dist, bench: await load(dist), results: [] });
for (const build of builds) await build.bench.run(Math.min(5000, perRound)); // warm up
for (let round = 0; round < rounds; round++)
  for (const build of builds) build.results.push(await build.bench.run(perRound));
for (const { dist, results, bench } of builds) {
  const sorted = [...results].sort((a, b) => a - b);
  console.log(
    `${dist}: median ${Math.round(sorted[Math.floor(sorted.length / 2)])} requests/s (rounds: ${results.map(Math.round).join(", ")}), ${bench.socket.written} bytes written`,
  );
}
