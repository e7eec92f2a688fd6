// The public API of tsgi: the interface types, the shared response engine and the gateways.

export type {
  Application,
  Body,
  Chunk,
  Environ,
  HeaderList,
  InputStream,
  StartResponse,
  Write,
} from "./types.js";
export {
  runApplication,
  ConnectionClosedError,
  type Outcome,
  type ResponseSink,
} from "./engine.js";
export { ApplicationError, formatCgiHead, validateHeaders, validateStatus } from "./headers.js";
export { TSGI_VERSION, decodeEnvironBytes, makeEnviron, urlScheme, utf8 } from "./environ.js";
export { runWithCgi, type CgiOptions } from "./cgi/gateway.js";
export { loadApplication, AppLoadError } from "./load-app.js";
export {
  serveFastCgi,
  ListenError,
  type FastCgiOptions,
  type FastCgiServer,
  type FastCgiStats,
} from "./fastcgi/server.js";
export { serveScgi } from "./scgi/server.js";
export { serveUwsgi } from "./uwsgi/server.js";
export type {
  RequestServerOptions as ScgiOptions,
  RequestServerOptions as UwsgiOptions,
  RequestServerOptions,
} from "./server/request-server.js";
export type { GatewayServerOptions } from "./server/options.js";
export type {
  RunningServer,
  RunningServer as ScgiServer,
  RunningServer as UwsgiServer,
} from "./server/serve.js";
export {
  validator,
  ValidationError,
  type Side,
  type ValidatedApplication,
} from "./validator/index.js";
export { compose, copyEnviron, mount, type Middleware } from "./middleware.js";
export { makeServer, type ServerOptions } from "./http/server.js";
export { serveHttp, type HttpServerOptions } from "./http/gateway.js";
export {
  environFromHttpRequest,
  cgiVariables,
  type HttpRequestHead,
  type HttpEnvironOptions,
} from "./http/environ.js";
export { toNodeHandler, serveNodeRequest, type ServedRequest } from "./http/handler.js";
export {
  fromFetchHandler,
  fromNodeHandler,
  type FetchHandler,
  type FetchOptions,
  type NodeHandler,
} from "./adapters/index.js";
export {
  testClient,
  type TestClient,
  type TestClientOptions,
  type TestRequestOptions,
  type TestResponse,
} from "./test-client.js";
export { isHopByHop } from "./headers.js";
