// Adapters between TSGI and the two other ways Node applications are written:
// fetch handlers (Request → Response) and node:http handlers (req, res).

export { fromFetchHandler, type FetchHandler, type FetchOptions } from "./fetch.js";
export { fromNodeHandler, type NodeHandler } from "./node.js";
export { toNodeHandler } from "../http/handler.js";
