// A hello of bench/apps.js on its framework's own Node server, as its users
// run it behind nginx proxy_pass.
// usage: node bench/apps/hello/native.js <express|koa|fastify|hono> <port>   (on 127.0.0.1)

import { createServer } from "node:http";

const [framework, portText] = process.argv.slice(2);
const port = Number(portText);
const host = "127.0.0.1";

switch (framework) {
  case "express": {
    const { create } = await import("./express.js");
    create().listen(port, host);
    break;
  }
  case "koa": {
    const { create } = await import("./koa.js");
    // As Koa's users do: its callback settles its own promise (errors become a 500).
    // eslint-disable-next-line @typescript-eslint/no-misused-promises
    createServer(create().callback()).listen(port, host);
    break;
  }
  case "fastify": {
    const { create } = await import("./fastify.js");
    await create().listen({ port, host });
    break;
  }
  case "hono": {
    const { create } = await import("./hono.js");
    const { serve } = await import("@hono/node-server");
    serve({ fetch: create().fetch, port, hostname: host });
    break;
  }
  default:
    process.stderr.write(`${process.argv[1]}: unknown framework ${framework}\n`);
    process.exit(2);
}

process.on("SIGTERM", () => process.exit(0));
