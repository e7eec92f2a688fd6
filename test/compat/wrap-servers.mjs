// Preloaded (`node --import`) into a framework's test processes by run.js:
// every request listener attached to an http or https server — through
// http.createServer(listener), new http.Server(listener) or
// server.on("request", listener), which the first two call (once() goes
// through on() as well) — is replaced by
// toNodeHandler(fromNodeHandler(listener)), so each request and response of
// the suite passes through tsgi's environ, engine and Node adapter.
// Patching node:http is what this harness is for; the library patches nothing.

import { appendFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import process from "node:process";
import { fromNodeHandler, toNodeHandler } from "../../dist/index.js";

/** @typedef {(req: http.IncomingMessage, res: http.ServerResponse) => unknown} Listener */

/** The wrapped listener for each original, so removeListener("request", original) still works. */
/** @type {WeakMap<Function, Listener>} */
const wrapped = new WeakMap();
let count = 0;

/**
 * @param {Function} listener
 * @returns {Listener}
 */
function throughTsgi(listener) {
  let wrapper = wrapped.get(listener);
  if (!wrapper) {
    wrapper = toNodeHandler(fromNodeHandler(/** @type {Listener} */ (listener)));
    wrapped.set(listener, wrapper);
    count++;
  }
  return wrapper;
}

/** @param {{ prototype: object }} Server */
function patch(Server) {
  const proto = /** @type {Record<string, unknown>} */ (Server.prototype);
  for (const method of ["on", "addListener", "prependListener", "removeListener", "off"]) {
    const original = /** @type {(this: unknown, event: unknown, fn: unknown) => unknown} */ (
      proto[method]
    );
    proto[method] = function (/** @type {unknown} */ event, /** @type {unknown} */ fn) {
      if (event !== "request" || typeof fn !== "function") return original.call(this, event, fn);
      const known = wrapped.get(fn);
      const removing = method === "removeListener" || method === "off";
      return original.call(this, event, removing ? (known ?? fn) : throughTsgi(fn));
    };
  }
}

patch(http.Server);
patch(https.Server);

// run.js adds these up to show the wrapper was in force.
const countFile = process.env.TSGI_COMPAT_COUNT_FILE;
if (countFile) process.on("exit", () => appendFileSync(countFile, `${count}\n`));
