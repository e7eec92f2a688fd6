// The public API of tsgi: the interface types, the shared response engine and the gateways.

export type { Application, Body, Chunk, Environ, HeaderList, InputStream, StartResponse, Write } from "./types.js";
export { runApplication, ConnectionClosedError, type Outcome, type ResponseSink } from "./engine.js";
export { ApplicationError, formatCgiHead, validateHeaders, validateStatus } from "./headers.js";
export { TSGI_VERSION, decodeEnvironBytes, makeEnviron, urlScheme, utf8 } from "./environ.js";
export { runWithCgi, type CgiOptions } from "./cgi/gateway.js";
export { loadApplication, AppLoadError } from "./load-app.js";
export { serveFastCgi, ListenError, type FastCgiOptions, type FastCgiServer, type FastCgiStats } from "./fastcgi/server.js";
export { validator, ValidationError, type Side, type ValidatedApplication } from "./validator.js";
export { compose, copyEnviron, mount, type Middleware } from "./middleware.js";
