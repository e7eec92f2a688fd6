#!/usr/bin/env node
// The tsgi command. `tsgi cgi` takes a fast path because every CGI request
// pays the start-up: one pre-bundled file holding only the CGI gateway,
// loaded with require() (this file is CommonJS, see bin/package.json, which
// spares the ESM loader one module), and no argument parser. Everything else
// goes through the full command line.
"use strict";
if (process.argv[2] === "cgi") {
  require("../dist/cli/cgi-bundle.cjs").main(process.argv.slice(3));
} else {
  import("../dist/cli/main.js").then(({ main }) => main(process.argv));
}
