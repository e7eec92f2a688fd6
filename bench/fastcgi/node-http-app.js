// The benchmark application on plain node:http, run behind nginx proxy_pass
// (bench/fastcgi.js); the handler is node-handler.cjs.
// usage: node node-http-app.js <port>   (listens on 127.0.0.1)

import { createServer } from "node:http";
import handle from "./node-handler.cjs";

createServer(handle).listen(Number(process.argv[2]), "127.0.0.1");

// Exit cleanly on SIGTERM (so that `node --cpu-prof` writes its profile).
process.on("SIGTERM", () => process.exit(0));
