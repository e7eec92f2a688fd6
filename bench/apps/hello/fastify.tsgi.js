// The Fastify hello as a TSGI application: Fastify routes a node:http
// request/response pair once it is ready, so tsgi's Node adapter drives that.
import { fromNodeHandler } from "tsgi/node";
import { create } from "./fastify.js";

const app = create();
await app.ready();

export default fromNodeHandler((req, res) => app.routing(req, res));
