// The `tsgi/node` entry: the adapters between TSGI and node:http style
// handlers (Express, Koa, Fastify), loading nothing else of tsgi — no
// gateway server, validator or command line — so an app that only needs an
// adapter starts as fast as its own imports allow.

export type { Application, Body, Chunk, Environ, HeaderList, StartResponse } from "./types.js";
export { fromNodeHandler, type NodeHandler } from "./adapters/node.js";
export { toNodeHandler } from "./http/handler.js";
