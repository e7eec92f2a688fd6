// The status and header checks made when the application calls startResponse
// (docs/SPEC.md, "startResponse" and "Content-Length"). The engine's own
// validateStatus and validateHeaders decide; these checks name the rule broken.

import {
  ApplicationError,
  declaredContentLength,
  findHeader,
  isHopByHop,
  statusCode,
  validateHeaders,
  validateStatus,
} from "../headers.js";
import type { HeaderList } from "../types.js";
import type { Fail } from "./violations.js";

// [header.checked] A status, header name or header value that breaks these rules is an application error, detected
// when `startResponse` is called; nothing of it is ever sent.
export function checkStatusAndHeaders(
  status: unknown,
  headers: unknown,
  fail: Fail,
): asserts status is string {
  try {
    validateStatus(status);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    // [status.format] A status matches `^[1-9][0-9][0-9] ` followed by a non-empty reason phrase made of the
    // characters a header value may hold.
    const detail = `status ${JSON.stringify(status)} must be "NNN Reason" (three digits, a space, a reason phrase, no control characters)`;
    fail("app", "status.format", detail);
  }
  try {
    validateHeaders(headers);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    fail("app", headerRule(headers), error.message);
  }
}

/**
 * Which rule a header list that validateHeaders refused breaks. Each pair is
 * put to validateHeaders again, name and value apart, so that the engine's own
 * checks decide, in the order that validateHeaders reports them.
 */
function headerRule(headers: unknown): string {
  if (!Array.isArray(headers)) return "header.list";
  for (const pair of headers as unknown[]) {
    if (accepts([pair])) continue;
    // [header.list] `headers` is an ordered list of `[name, value]` pairs of strings.
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== "string" ||
      typeof pair[1] !== "string"
    )
      return "header.list";
    const [name, value] = pair as [string, string];
    // [header.name] A header name is an RFC 9110 token: letters, digits and ``!#$%&'*+-.^_`|~``.
    if (!isHopByHop(name) && !accepts([[name, ""]])) return "header.name";
    // [header.value] A header value holds only tab and the characters U+0020–U+007E and U+0080–U+00FF (RFC 9110
    // field text, Latin-1).
    if (!accepts([["X", value]])) return "header.value";
    // [header.hop-by-hop] Hop-by-hop headers describe one connection and belong to the gateway: `Connection`,
    // `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`, `TE`, `Trailer`, `Trailers`,
    // `Transfer-Encoding` and `Upgrade` (any case) are rejected.
    return "header.hop-by-hop";
  }
  return "header.list";
}

function accepts(headers: unknown): boolean {
  try {
    validateHeaders(headers);
    return true;
  } catch {
    return false;
  }
}

/** Checks the Content-Length the application set, and returns it. */
export function checkContentLength(
  status: string,
  headers: HeaderList,
  fail: Fail,
): number | undefined {
  let declared: number | undefined;
  try {
    declared = declaredContentLength(headers);
  } catch (error) {
    if (!(error instanceof ApplicationError)) throw error;
    // [length.decimal] A `Content-Length` set by the application is one decimal number (repeated headers carry the
    // same one); anything else is an application error, which gives a 500.
    fail("app", "length.decimal", error.message);
  }
  const code = statusCode(status);
  // [length.no-body] A `1xx` or `204` response must not carry `Content-Length`; `Content-Type` is allowed, and a
  // `304` may carry `Content-Length`, the length of the selected representation (RFC 9110 §8.6, §15.4.5).
  if ((code < 200 || code === 204) && findHeader(headers, "content-length") !== undefined) {
    fail(
      "app",
      "length.no-body",
      `a ${code} response must not have a Content-Length header (RFC 9110 section 8.6)`,
    );
  }
  return declared;
}
