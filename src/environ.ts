// The rules every gateway follows when it builds an environ: how bytes become
// strings, which keys are always there, and how the URL scheme is found.

import type { Environ, InputStream } from "./types.js";
import type { Writable } from "node:stream";
import { decodePath } from "./percent.js";

export const TSGI_VERSION: readonly [number, number] = Object.freeze([1, 0] as const);

/**
 * Bytes from the web server become environ strings as Latin-1: each byte is
 * one code point U+0000..U+00FF, so no byte is ever lost or replaced (PEP 3333's
 * rule). `utf8()` reads such a string as UTF-8 when the application wants that.
 */
export function decodeEnvironBytes(bytes: Uint8Array): string {
  // [env.latin1] Every byte of a variable's name and value becomes the one character with the same number: byte
  // `0xNN` becomes U+00NN.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** decodeEnvironBytes of `buffer[start, end)`, without a Buffer made for the range (a header block's parsers). */
export function decodeEnvironRange(buffer: Buffer, start: number, end: number): string {
  return buffer.toString("latin1", start, end);
}

/** Reads an environ string (Latin-1 code points standing for bytes) as UTF-8 text. */
export function utf8(value: string): string {
  return Buffer.from(value, "latin1").toString("utf8");
}

/**
 * `https` when `HTTPS` is `on`, `1` or `yes` (any case); when `HTTPS` is unset
 * or empty, `REQUEST_SCHEME` decides; otherwise `http`. `HTTPS` wins because
 * IIS sends `HTTPS=off` and Apache can leave a stale `REQUEST_SCHEME`.
 */
export function urlScheme(vars: Record<string, unknown>): "http" | "https" {
  // [env.url-scheme] `tsgi.url_scheme`: `"https"` when `HTTPS` is `on`, `1` or `yes` (any case); when `HTTPS` is
  // unset or empty, `"https"` if `REQUEST_SCHEME` is `https` (any case); otherwise `"http"`.
  const https = vars.HTTPS;
  if (typeof https === "string" && https !== "") {
    const flag = https.toLowerCase();
    return flag === "on" || flag === "1" || flag === "yes" ? "https" : "http";
  }
  return typeof vars.REQUEST_SCHEME === "string" && vars.REQUEST_SCHEME.toLowerCase() === "https"
    ? "https"
    : "http";
}

/**
 * A key whose value is built when first read. Its getter and setter are shared
 * by every request (they find what they need through `this`): functions of
 * their own would cost each environ its fast shape in V8.
 */
export interface LazyKey {
  get: (this: object) => unknown;
  set: (this: object, value: unknown) => void;
}

export interface GatewayKeys {
  /** Left out by a gateway that defines `tsgi.input` itself afterwards. */
  input?: InputStream;
  /** `tsgi.input` built on first read, in place of `input`. */
  lazyInput?: LazyKey;
  /** Left out by a gateway that defines `tsgi.errors` itself afterwards. */
  errors?: Writable;
  multithread: boolean;
  multiprocess: boolean;
  runOnce: boolean;
}

/**
 * Builds an environ from the web server's variables (kept exactly as given;
 * the object itself becomes the environ, to spare a copy per request)
 * plus the `tsgi.*` keys. SCRIPT_NAME, PATH_INFO and QUERY_STRING are always
 * present (empty when the server sent none), as PEP 3333 asks.
 */
export function makeEnviron(vars: Record<string, string | undefined>, keys: GatewayKeys): Environ {
  const environ = vars as unknown as Environ;
  environ.SCRIPT_NAME ??= "";
  environ.PATH_INFO ??= "";
  environ.QUERY_STRING ??= "";
  environ["tsgi.version"] = TSGI_VERSION;
  environ["tsgi.url_scheme"] = urlScheme(vars);
  if (keys.input) environ["tsgi.input"] = keys.input;
  else if (keys.lazyInput)
    Object.defineProperty(environ, "tsgi.input", {
      get: keys.lazyInput.get,
      set: keys.lazyInput.set,
      enumerable: true,
      configurable: true,
    });
  if (keys.errors) environ["tsgi.errors"] = keys.errors;
  environ["tsgi.multithread"] = keys.multithread;
  environ["tsgi.multiprocess"] = keys.multiprocess;
  environ["tsgi.run_once"] = keys.runOnce;
  return environ;
}

/** A CONTENT_LENGTH is valid when absent, empty, or a decimal number. */
export function parseContentLength(value: string | undefined): number | undefined | "invalid" {
  if (value === undefined || value === "") return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) return "invalid";
  return Number(value);
}

/** The request as log lines and messages name it: `GET /script/path?query`. */
export function requestLine(environ: Environ): string {
  const target =
    (environ.SCRIPT_NAME ?? "") +
    (environ.PATH_INFO ?? "") +
    (environ.QUERY_STRING ? "?" + environ.QUERY_STRING : "");
  return `${environ.REQUEST_METHOD} ${target}`;
}

/** Makes `key` a plain, writable own value of `target`, replacing a getter it had there. */
export function defineValue(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * For gateways whose web servers may send neither SCRIPT_NAME nor PATH_INFO
 * (nginx's stock `scgi_params` carry only REQUEST_URI and DOCUMENT_URI): then
 * PATH_INFO is the decoded path of DOCUMENT_URI, else of REQUEST_URI, and
 * SCRIPT_NAME is empty. When either is sent, the variables stay as they are.
 */
export function fillPathFromUri(vars: Record<string, string | undefined>): void {
  // [stream.path] When the web server sends neither `SCRIPT_NAME` nor `PATH_INFO`, `PATH_INFO` is the
  // percent-decoded path of `DOCUMENT_URI` (else of `REQUEST_URI`) and `SCRIPT_NAME` is `""`.
  if (vars.SCRIPT_NAME !== undefined || vars.PATH_INFO !== undefined) return;
  const uri = vars.DOCUMENT_URI ?? vars.REQUEST_URI;
  if (uri === undefined) return;
  vars.SCRIPT_NAME = "";
  vars.PATH_INFO = decodePath(uri.split("?", 1)[0]);
}
