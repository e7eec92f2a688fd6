// The TSGI interface as types: what an application and a gateway agree on.
// docs/SPEC.md is the prose version of the same contract.
import type { Readable, Writable } from "node:stream";

/** One piece of a response body. A string is sent as UTF-8. */
export type Chunk = Uint8Array | string;

/**
 * What an application returns: any sync or async iterable of chunks. If it has
 * `close()`, the gateway calls it exactly once when it is done with the body.
 * `object` keeps out a bare string: it is an iterable of strings, but the
 * gateways refuse it as a body (docs/SPEC.md), so it is a type error here too.
 */
export type Body = (Iterable<Chunk> | AsyncIterable<Chunk>) & object & { close?: () => unknown };

/** Response headers as an ordered list of `[name, value]` pairs; names may repeat. */
export type HeaderList = [string, string][];

/** The legacy imperative output path returned by `startResponse`; sends at once. */
export type Write = (chunk: Chunk) => void | Promise<void>;

/**
 * Sets the status (`"NNN Reason"`) and headers of the response. A second call
 * is only allowed with `excInfo` (the error being handled): before the headers
 * went out it replaces them, after that it rethrows `excInfo`.
 */
export type StartResponse = (status: string, headers: HeaderList, excInfo?: unknown) => Write;

/** The request body: a Node Readable that ends after CONTENT_LENGTH bytes. */
export type InputStream = Readable & AsyncIterable<Uint8Array>;

/**
 * The request: CGI meta-variables as strings (bytes decoded as Latin-1, see
 * docs/SPEC.md) plus the `tsgi.*` keys. Any upper-case key is a variable the
 * web server may have sent (`string | undefined`); a lower-case key that is
 * not declared here, such as a misspelt `tsgi.*` key, is a type error.
 * Middleware that adds keys of its own declares them by merging into this
 * interface: `declare module "tsgi" { interface Environ { "myapp.user"?: User } }`.
 */
export interface Environ {
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  /** Required by RFC 3875 (sections 4.1.14 to 4.1.16) and by the validator. */
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  REMOTE_ADDR?: string;
  REMOTE_PORT?: string;
  REMOTE_HOST?: string;
  REMOTE_USER?: string;
  AUTH_TYPE?: string;
  GATEWAY_INTERFACE?: string;
  SERVER_SOFTWARE?: string;
  SERVER_ADDR?: string;
  /** The raw request target (path and query, still percent-encoded), as the client sent it. */
  REQUEST_URI?: string;
  REQUEST_SCHEME?: string;
  /** `on` (or `1`, `yes`) over TLS; read `tsgi.url_scheme` rather than this. */
  HTTPS?: string;
  DOCUMENT_ROOT?: string;
  DOCUMENT_URI?: string;
  PATH_TRANSLATED?: string;
  [httpHeader: `HTTP_${string}`]: string | undefined;
  "tsgi.version": readonly [number, number];
  "tsgi.url_scheme": "http" | "https";
  "tsgi.input": InputStream;
  "tsgi.errors": Writable;
  "tsgi.multithread": boolean;
  "tsgi.multiprocess": boolean;
  "tsgi.run_once": boolean;
  /**
   * Returns an AbortSignal aborted when the client goes away or the web server
   * aborts the request; undefined where the gateway cannot tell (CGI). A function,
   * so the signal (about 4 µs to build in Node) is built only when asked for.
   */
  readonly "tsgi.get_signal"?: () => AbortSignal | undefined;
  /** FastCGI only: the role the web server asked for (FastCGI 1.0, section 6). */
  "tsgi.fcgi.role"?: "responder" | "authorizer" | "filter";
  /** FastCGI filter role only: the file to filter (`FCGI_DATA`), a stream like `tsgi.input`. */
  "tsgi.fcgi.data"?: InputStream;
  /** Keys a gateway adds for itself: `tsgi.<gateway>.<name>`. */
  [gatewayKey: `tsgi.${string}.${string}`]: unknown;
  /** Any other CGI variable the web server sent (SetEnv, mod_rewrite's E= flag, a fastcgi_param). */
  [cgiVariable: Uppercase<string>]: string | undefined;
}

/** A TSGI application. */
export type Application = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;
