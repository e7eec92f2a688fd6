// The benchmark application on node-fastcgi (bench/fastcgi.js); the handler is
// node-handler.cjs. usage: node node-fastcgi-app.cjs <port>   (listens on 127.0.0.1)
"use strict";
const fcgi = require("node-fastcgi");
const handle = require("./node-handler.cjs");

fcgi.createServer(handle).listen(Number(process.argv[2]), "127.0.0.1");

// Exit cleanly on SIGTERM (so that `node --cpu-prof` writes its profile).
process.on("SIGTERM", () => process.exit(0));
