// The environ checks (docs/SPEC.md, "The environ"): what a gateway hands the
// application, checked before the application sees it.

import { parseContentLength } from "../environ.js";
import { NOT_LATIN1 } from "../percent.js";
import { streamModule } from "../lazy-stream.js";
import type { Environ } from "../types.js";
import { describe } from "../values.js";
import type { Fail } from "./violations.js";

const REQUIRED_STRINGS: Record<string, string> = {
  REQUEST_METHOD: "env.method",
  SCRIPT_NAME: "env.script-name",
  PATH_INFO: "env.path-info",
  QUERY_STRING: "env.query-string",
  SERVER_NAME: "env.server",
  SERVER_PORT: "env.server",
  SERVER_PROTOCOL: "env.server",
};
const BOOLEAN_KEYS = ["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"] as const;

export function checkEnviron(environ: unknown, fail: Fail): asserts environ is Environ {
  // [env.object] The environ is a plain object holding the request's CGI meta-variables (RFC 3875) and the
  // `tsgi.*` keys.
  if (environ === null || typeof environ !== "object" || Array.isArray(environ)) {
    fail("gateway", "env.object", `environ must be an object, not ${describe(environ)}`);
  }
  const env = environ as Record<string, unknown>;
  // The presence of these; their form is checked in checkRequestVariables.
  //
  // [env.query-string] `QUERY_STRING`: the text after `?`, still percent-encoded; always present, possibly `""`.
  // [env.server] `SERVER_NAME`, `SERVER_PORT`, `SERVER_PROTOCOL`: always present, as the web server sent them (RFC
  // 3875 §4.1.14 to §4.1.16).
  for (const [key, rule] of Object.entries(REQUIRED_STRINGS)) {
    if (typeof env[key] !== "string")
      fail("gateway", rule, `environ.${key} must be a string, not ${describe(env[key])}`);
  }
  for (const [key, value] of Object.entries(env)) checkVariable(key, value, fail);
  checkRequestVariables(env as unknown as Environ, fail);
  checkTsgiKeys(env, fail);
}

function checkVariable(key: string, value: unknown, fail: Fail): void {
  // [env.latin1] Every byte of a variable's name and value becomes the one character with the same number: byte
  // `0xNN` becomes U+00NN.
  const badInName = NOT_LATIN1.exec(key);
  if (badInName)
    fail(
      "gateway",
      "env.latin1",
      `the environ key ${JSON.stringify(key)} must be Latin-1, but holds ${codePoint(badInName[0])}`,
    );
  if (typeof value === "string") {
    const bad = NOT_LATIN1.exec(value);
    if (bad)
      fail(
        "gateway",
        "env.latin1",
        `environ.${key} must be Latin-1 (one code point per byte), but holds ${codePoint(bad[0])}`,
      );
    return;
  }
  // [env.strings] The CGI variables (the keys without a dot) hold strings; a key holding `undefined` counts as
  // absent.
  if (!key.includes(".") && value !== undefined) {
    fail(
      "gateway",
      "env.strings",
      `environ.${key} must be a string (CGI and HTTP_ variables are strings), not ${describe(value)}`,
    );
  }
}

/** The variables whose content has a form (their presence is checked with REQUIRED_STRINGS). */
function checkRequestVariables(env: Environ, fail: Fail): void {
  // [env.method] `REQUEST_METHOD`: always present, never empty.
  if (env.REQUEST_METHOD === "")
    fail("gateway", "env.method", "environ.REQUEST_METHOD must not be empty");
  // [env.content-length] `CONTENT_TYPE`, `CONTENT_LENGTH`: as the web server sent them; they may be absent or
  // empty, and a `CONTENT_LENGTH` that is not empty is a decimal number.
  if (parseContentLength(env.CONTENT_LENGTH) === "invalid") {
    fail(
      "gateway",
      "env.content-length",
      `environ.CONTENT_LENGTH must be a decimal number when present, not ${JSON.stringify(env.CONTENT_LENGTH)}`,
    );
  }
  // [env.http-content] `HTTP_CONTENT_TYPE` and `HTTP_CONTENT_LENGTH` may be present when a web server passes them
  // (nginx does); an application reads `CONTENT_TYPE` and `CONTENT_LENGTH`.
  //
  // So HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH are checked as any other variable, and nothing more.
  // [env.script-name] `SCRIPT_NAME`: the part of the URL path that leads to the application; always present, `""`
  // at the root, otherwise starting with `/` and never `/` alone (that slash belongs to `PATH_INFO`).
  if (env.SCRIPT_NAME === "/") {
    fail(
      "gateway",
      "env.script-name",
      'environ.SCRIPT_NAME must not be "/": the root is "" and the slash belongs to PATH_INFO',
    );
  }
  if (env.SCRIPT_NAME !== "" && !env.SCRIPT_NAME.startsWith("/")) {
    fail(
      "gateway",
      "env.script-name",
      `environ.SCRIPT_NAME must be empty or start with "/", not ${JSON.stringify(env.SCRIPT_NAME)}`,
    );
  }
  // [env.path-info] `PATH_INFO`: the rest of the path, decoded by the web server; always present, `""` or starting
  // with `/`.
  if (env.PATH_INFO !== "" && !env.PATH_INFO.startsWith("/")) {
    fail(
      "gateway",
      "env.path-info",
      `environ.PATH_INFO must be empty or start with "/", not ${JSON.stringify(env.PATH_INFO)}`,
    );
  }
}

function checkTsgiKeys(env: Record<string, unknown>, fail: Fail): void {
  const version = env["tsgi.version"];
  // [env.version] `tsgi.version`: `[1, 0]` (frozen).
  if (!Array.isArray(version) || version.length !== 2 || version[0] !== 1 || version[1] !== 0) {
    fail(
      "gateway",
      "env.version",
      `environ["tsgi.version"] must be [1, 0], not ${describeValue(version)}`,
    );
  }
  const scheme = env["tsgi.url_scheme"];
  // [env.url-scheme] `tsgi.url_scheme`: `"https"` when `HTTPS` is `on`, `1` or `yes` (any case); when `HTTPS` is
  // unset or empty, `"https"` if `REQUEST_SCHEME` is `https` (any case); otherwise `"http"`.
  if (scheme !== "http" && scheme !== "https") {
    fail(
      "gateway",
      "env.url-scheme",
      `environ["tsgi.url_scheme"] must be "http" or "https", not ${describeValue(scheme)}`,
    );
  }
  const stream = streamModule();
  const input = env["tsgi.input"];
  // [env.input] `tsgi.input`: the request body, a Node `Readable` that is also `AsyncIterable<Uint8Array>`; it
  // yields bytes, never strings, and ends at the end of the body, never reading past it.
  if (
    !(input instanceof stream.Readable) ||
    typeof (input as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== "function"
  ) {
    fail(
      "gateway",
      "env.input",
      `environ["tsgi.input"] must be an async-iterable Readable, not ${describe(input)}`,
    );
  }
  // [env.errors] `tsgi.errors`: a Node `Writable` for log text; the gateway decides where it goes.
  if (!(env["tsgi.errors"] instanceof stream.Writable)) {
    fail(
      "gateway",
      "env.errors",
      `environ["tsgi.errors"] must be a Writable, not ${describe(env["tsgi.errors"])}`,
    );
  }
  // [env.flags] `tsgi.multithread`, `tsgi.multiprocess` and `tsgi.run_once` are booleans.
  for (const key of BOOLEAN_KEYS) {
    if (typeof env[key] !== "boolean")
      fail(
        "gateway",
        "env.flags",
        `environ["${key}"] must be a boolean, not ${describe(env[key])}`,
      );
  }
}

/** `U+20AC` for "€". */
function codePoint(character: string): string {
  return "U+" + character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
}

function describeValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return describe(value);
  }
}
