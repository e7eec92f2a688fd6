// In-process requests for tests: `testClient(app).get("/path")` runs the
// application under the validator, with an environ built as the HTTP gateway
// builds it, and collects the response in memory. No sockets.

import { Readable, Writable } from "node:stream";
import { runApplication, type Outcome, type ResponseSink } from "./engine.js";
import { makeEnviron } from "./environ.js";
import { statusCode } from "./headers.js";
import { cgiVariables } from "./http/environ.js";
import type { Application, HeaderList, InputStream } from "./types.js";
import { validator } from "./validator/index.js";

export interface TestRequestOptions {
  /** Request headers, as an object or as ordered pairs (a name may repeat). Host defaults to `localhost`. */
  headers?: Record<string, string> | [string, string][];
  /** The request body; Content-Length is set from it unless given. */
  body?: string | Uint8Array;
  /** Default 127.0.0.1. */
  remoteAddress?: string;
}

export interface TestResponse {
  status: number;
  statusText: string;
  /** In the order the application gave them; a name may repeat (Set-Cookie). */
  headers: HeaderList;
  body: Uint8Array;
  /** The first value of a header (any case), or undefined. */
  header(name: string): string | undefined;
  /** Every value of a header (any case), in order. */
  headerValues(name: string): string[];
  /** The body as UTF-8 text. */
  text(): string;
  /**
   * How the request ended: "complete"; "failed" when the application failed and
   * a 500 went out instead; "cut" when the response was cut off after its
   * headers (an error while streaming, or a body shorter than its Content-Length).
   */
  outcome: Outcome;
  /** What the application and the engine wrote to tsgi.errors (error reports, stack traces). */
  errors: string;
}

export interface TestClientOptions {
  /** Check the gateway/application contract on every request (default true): a violation rejects the request with a ValidationError. */
  validate?: boolean;
}

export interface TestClient {
  request(method: string, target: string, options?: TestRequestOptions): Promise<TestResponse>;
  get(target: string, options?: TestRequestOptions): Promise<TestResponse>;
  head(target: string, options?: TestRequestOptions): Promise<TestResponse>;
  post(
    target: string,
    body?: string | Uint8Array,
    options?: TestRequestOptions,
  ): Promise<TestResponse>;
  put(
    target: string,
    body?: string | Uint8Array,
    options?: TestRequestOptions,
  ): Promise<TestResponse>;
  patch(
    target: string,
    body?: string | Uint8Array,
    options?: TestRequestOptions,
  ): Promise<TestResponse>;
  delete(target: string, options?: TestRequestOptions): Promise<TestResponse>;
}

/**
 * A client for `app`. `target` is a path with an optional query
 * (`/items?page=2`), or an absolute URL, whose scheme and host are used.
 */
export function testClient(app: Application, options: TestClientOptions = {}): TestClient {
  const checked = options.validate === false ? undefined : validator(app);
  const request = async (
    method: string,
    target: string,
    requestOptions: TestRequestOptions = {},
  ): Promise<TestResponse> => {
    const response = await runInMemory(checked ?? app, method, target, requestOptions);
    // Throws the first rule broken during the request, also one the engine turned into a 500.
    checked?.assertNoViolations();
    return response;
  };
  const withBody =
    (method: string) =>
    (target: string, body?: string | Uint8Array, requestOptions: TestRequestOptions = {}) =>
      request(method, target, { ...requestOptions, body: body ?? requestOptions.body });
  return {
    request,
    get: (target, requestOptions) => request("GET", target, requestOptions),
    head: (target, requestOptions) => request("HEAD", target, requestOptions),
    post: withBody("POST"),
    put: withBody("PUT"),
    patch: withBody("PATCH"),
    delete: (target, requestOptions) => request("DELETE", target, requestOptions),
  };
}

async function runInMemory(
  app: Application,
  method: string,
  target: string,
  options: TestRequestOptions,
): Promise<TestResponse> {
  const absolute = /^(https?):\/\/([^/?#]*)/i.exec(target);
  const secure = absolute?.[1]?.toLowerCase() === "https";
  const body = typeof options.body === "string" ? Buffer.from(options.body, "utf8") : options.body;
  const rawHeaders = headerPairs(options.headers).flat();
  if (!hasHeader(rawHeaders, "host")) rawHeaders.unshift("Host", absolute?.[2] || "localhost");
  if (
    body !== undefined &&
    !hasHeader(rawHeaders, "content-length") &&
    !hasHeader(rawHeaders, "transfer-encoding")
  ) {
    rawHeaders.push("Content-Length", String(body.length));
  }

  const vars = cgiVariables({
    method,
    target,
    httpVersion: "1.1",
    rawHeaders,
    remoteAddress: options.remoteAddress ?? "127.0.0.1",
    remotePort: 50000,
    localAddress: "127.0.0.1",
    localPort: secure ? 443 : 80,
    secure,
  });
  const errors = new TextCollector();
  const environ = makeEnviron(vars, {
    input: Readable.from(body && body.length > 0 ? [body] : [], {
      objectMode: false,
    }) as InputStream,
    errors,
    multithread: false,
    multiprocess: false,
    runOnce: false,
  });
  const sink = new MemorySink(method.toUpperCase() === "HEAD");
  const outcome = await runApplication(app, environ, sink);
  return sink.response(outcome, errors.text);
}

function headerPairs(headers: TestRequestOptions["headers"]): [string, string][] {
  if (headers === undefined) return [];
  return Array.isArray(headers)
    ? headers.map(([name, value]) => [name, value])
    : Object.entries(headers);
}

function hasHeader(rawHeaders: string[], lowerName: string): boolean {
  return rawHeaders.some((value, index) => index % 2 === 0 && value.toLowerCase() === lowerName);
}

/** Keeps the response in memory; like an HTTP server, it drops the body of a HEAD response. */
class MemorySink implements ResponseSink {
  private status = "";
  private headers: HeaderList = [];
  private readonly chunks: Uint8Array[] = [];

  constructor(private readonly dropBody: boolean) {}

  sendHeaders(status: string, headers: HeaderList): void {
    this.status = status;
    this.headers = headers;
  }

  write(data: Uint8Array): void {
    if (!this.dropBody) this.chunks.push(Uint8Array.from(data));
  }

  end(): void {}

  abort(): void {}

  response(outcome: Outcome, errors: string): TestResponse {
    const headers = this.headers;
    const body = Buffer.concat(this.chunks);
    const values = (name: string) =>
      headers.filter(([key]) => key.toLowerCase() === name.toLowerCase()).map(([, value]) => value);
    return {
      status: this.status ? statusCode(this.status) : 0,
      statusText: this.status.slice(4),
      headers,
      body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
      header: (name) => values(name)[0],
      headerValues: values,
      text: () => body.toString("utf8"),
      outcome,
      errors,
    };
  }
}

/** A tsgi.errors that keeps what was written, so a test can look at it and the test output stays clean. */
class TextCollector extends Writable {
  text = "";

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    callback();
  }
}
