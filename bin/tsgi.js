#!/usr/bin/env node
// The tsgi command. `tsgi cgi` takes a fast path because every CGI request
// pays the start-up: one pre-bundled file holding only the CGI gateway,
// loaded with require() (this file is CommonJS, see bin/package.json, which
// spares the ESM loader one module), and no argument parser. Everything else
// goes through the full command line. The paths are in variables so that the
// type checker takes the types from src/ instead of reading the built files.
"use strict";
const CGI_BUNDLE = "../dist/cli/cgi-bundle.cjs";
const MAIN = "../dist/cli/main.js";
if (process.argv[2] === "cgi") {
  /** @type {unknown} */
  const loaded = require(CGI_BUNDLE);
  const cgi = /** @type {typeof import("../src/cli/cgi.js")} */ (loaded);
  void cgi.main(process.argv.slice(3));
} else {
  /** @type {Promise<typeof import("../src/cli/main.js")>} */
  const cli = import(MAIN);
  void cli.then(({ main }) => main(process.argv));
}
