// Compile-time tests of the interface types in src/types.ts, checked by
// `tsc --noEmit -p .` (part of `npm test`); nothing here runs. A line under
// `// @ts-expect-error` must fail to type-check, or tsc reports the directive.

import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { expectTypeOf } from "vitest";
import type { Application, Chunk, Environ } from "../src/types.js";

// What an application may return: any iterable or async iterable of chunks.

export const arrayBody: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["text", new Uint8Array([10])];
};

export const generatorBody: Application = function* (_environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  yield "text";
  yield new Uint8Array([10]);
};

export const asyncGeneratorBody: Application = async function* (environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
  for await (const chunk of environ["tsgi.input"]) yield chunk;
};

export const readableBody: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return Readable.from(["text"]);
};

export const fileStreamBody: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
  return createReadStream("/etc/hostname");
};

export const promisedBody: Application = async (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return new Set<Chunk>(["any", "iterable"]);
};

export const bodyWithClose: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return Object.assign(["text"], { close: () => undefined });
};

// What it may not return. For a function with a block body, TypeScript
// reports the error at the declaration, so the directive stands above it.

// @ts-expect-error a bare string is an iterable of strings, but not a body: return ["hello"]
export const stringBody: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return "hello";
};

// @ts-expect-error the same from an async application
export const promisedStringBody: Application = async () => "hello";

// @ts-expect-error bare bytes iterate as numbers: return [bytes]
export const bytesBody: Application = () => new Uint8Array([1, 2, 3]);

// @ts-expect-error a response object, as fetch-style code returns, is not a body
export const responseObject: Application = () => ({ status: 200, headers: [], body: ["text"] });

// @ts-expect-error a chunk is a string or a Uint8Array
export const numberChunks: Application = () => [1, 2, 3];

// The environ's documented keys have their types.

export function environKeys(environ: Environ): void {
  expectTypeOf(environ.PATH_INFO).toEqualTypeOf<string>();
  // @ts-expect-error PATH_INFO is always present
  expectTypeOf(environ.PATH_INFO).toEqualTypeOf<string | undefined>();

  expectTypeOf(environ.SERVER_NAME).toEqualTypeOf<string>();
  expectTypeOf(environ.SERVER_PORT).toEqualTypeOf<string>();
  expectTypeOf(environ.SERVER_PROTOCOL).toEqualTypeOf<string>();

  expectTypeOf(environ["tsgi.input"]).toExtend<Readable>();
  expectTypeOf(environ["tsgi.input"]).toExtend<AsyncIterable<Uint8Array>>();
  // @ts-expect-error the body is a stream, not text
  expectTypeOf(environ["tsgi.input"]).toExtend<string>();

  expectTypeOf(environ.REQUEST_URI).toEqualTypeOf<string | undefined>();
  // @ts-expect-error a web server may leave REQUEST_URI out
  expectTypeOf(environ.REQUEST_URI).toEqualTypeOf<string>();

  expectTypeOf(environ["tsgi.fcgi.role"]).toEqualTypeOf<
    "responder" | "authorizer" | "filter" | undefined
  >();
  // @ts-expect-error roles are lower case
  expectTypeOf(environ["tsgi.fcgi.role"]).toExtend<"Responder" | undefined>();
  expectTypeOf(environ["tsgi.fcgi.data"]).toEqualTypeOf<Environ["tsgi.input"] | undefined>();

  for (const key of [
    "HTTPS",
    "REMOTE_PORT",
    "REMOTE_HOST",
    "REMOTE_USER",
    "AUTH_TYPE",
    "GATEWAY_INTERFACE",
  ] as const) {
    expectTypeOf(environ[key]).toEqualTypeOf<string | undefined>();
  }
  for (const key of [
    "SERVER_SOFTWARE",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "REQUEST_SCHEME",
    "SERVER_ADDR",
  ] as const) {
    expectTypeOf(environ[key]).toEqualTypeOf<string | undefined>();
  }
  for (const key of [
    "PATH_TRANSLATED",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_USER_AGENT",
  ] as const) {
    expectTypeOf(environ[key]).toEqualTypeOf<string | undefined>();
  }
}

export function requiredServerKeys(environ: Environ): Environ {
  const { SERVER_NAME, ...withoutServerName } = environ;
  expectTypeOf(SERVER_NAME).toEqualTypeOf<string>();
  // @ts-expect-error every gateway provides SERVER_NAME, SERVER_PORT and SERVER_PROTOCOL
  return withoutServerName;
}

export function keysOutsideTheSpec(environ: Environ): void {
  // A misspelt tsgi key is no key at all.
  // @ts-expect-error "tsgi.inptu" is not a tsgi key
  void environ["tsgi.inptu"];
  // @ts-expect-error nor is a lower-case variable
  void environ.request_method;
  // Any other upper-case name is a variable the web server may have sent (SetEnv, fastcgi_param).
  expectTypeOf(environ.SITE_MODE).toEqualTypeOf<string | undefined>();
  // A gateway's own keys: tsgi.<gateway>.<name>.
  expectTypeOf(environ["tsgi.scgi.peer"]).toEqualTypeOf<unknown>();
  // Middleware declares its keys by merging into Environ (see below).
  expectTypeOf(environ["example.user"]).toEqualTypeOf<{ name: string } | undefined>();
}

declare module "../src/types.js" {
  interface Environ {
    "example.user"?: { name: string };
  }
}
