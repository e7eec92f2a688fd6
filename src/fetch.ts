// The `tsgi/fetch` entry: the adapter for fetch-style applications (Hono's
// app.fetch, any Request → Response function), loading nothing else of tsgi —
// no gateway server, validator or command line.

export type { Application, Body, Chunk, Environ, HeaderList, StartResponse } from "./types.js";
export { fromFetchHandler, type FetchHandler, type FetchOptions } from "./adapters/fetch.js";
