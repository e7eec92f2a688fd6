// Checks an application's status line and headers, and writes them as a CGI
// header block (the format both the CGI and the FastCGI gateway send).
//
// Written by hand rather than with node:http's validateHeaderName/Value:
// importing node:http costs about 5 ms, and every CGI request pays start-up.

import type { HeaderList } from "./types.js";

/** An application broke the TSGI contract; the message names the rule. */
export class ApplicationError extends Error {
  override name = "ApplicationError";
}

// RFC 9110 token characters.
// [header.name] A header name is an RFC 9110 token: letters, digits and ``!#$%&'*+-.^_`|~``.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field-value characters: visible Latin-1, space and tab; no CR, LF, NUL or other controls.
// [header.value] A header value holds only tab and the characters U+0020–U+007E and U+0080–U+00FF (RFC 9110 field
// text, Latin-1).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// [status.format] A status matches `^[1-9][0-9][0-9] ` followed by a non-empty reason phrase made of the
// characters a header value may hold.
//
// RFC 9110 §15 allows any three digits from 100 to 999; node:http sends them all.
const STATUS = /^[1-9][0-9][0-9] [\t\x20-\x7e\x80-\xff]+$/;

// [header.hop-by-hop] Hop-by-hop headers describe one connection and belong to the gateway: `Connection`,
// `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`, `TE`, `Trailer`, `Trailers`,
// `Transfer-Encoding` and `Upgrade` (any case) are rejected.
/** Headers that describe one connection, which only the gateway may set (PEP 3333). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
]);

export function validateStatus(status: unknown): asserts status is string {
  if (typeof status !== "string" || !STATUS.test(status)) {
    throw new ApplicationError(
      `invalid status ${JSON.stringify(status)}: expected "NNN Reason" (three digits, a space, ` +
        `a reason phrase, no control characters)`,
    );
  }
}

export function validateHeaders(headers: unknown): asserts headers is HeaderList {
  if (!Array.isArray(headers)) {
    throw new ApplicationError("headers must be an array of [name, value] pairs");
  }
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new ApplicationError(`header ${JSON.stringify(pair)} is not a [name, value] pair`);
    }
    const [name, value] = pair as unknown[];
    if (typeof name !== "string" || !TOKEN.test(name)) {
      throw new ApplicationError(`invalid header name ${JSON.stringify(name)}: must be a token`);
    }
    if (typeof value !== "string" || !FIELD_VALUE.test(value)) {
      throw new ApplicationError(
        `invalid value for header ${name}: ${JSON.stringify(value)} ` +
          `(must be a string without CR, LF, NUL or other control characters, Latin-1 only)`,
      );
    }
    if (HOP_BY_HOP.has(name.toLowerCase())) {
      throw new ApplicationError(`hop-by-hop header ${name} may only be set by the gateway`);
    }
  }
}

/** Whether a header describes one connection, so that only a gateway may send it (the rule validateHeaders applies). */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name.toLowerCase());
}

/**
 * The length the application announced in Content-Length, or undefined when it
 * set none. The gateway counts the body against it, so it must be one decimal
 * number; repeated headers must agree (RFC 9110 section 8.6).
 */
export function declaredContentLength(headers: HeaderList): number | undefined {
  let declared: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i];
    if (name.length !== 14 || name.toLowerCase() !== "content-length") continue;
    if (!/^[0-9]{1,15}$/.test(value)) {
      throw new ApplicationError(
        `invalid Content-Length ${JSON.stringify(value)}: must be a decimal number`,
      );
    }
    if (declared !== undefined && Number(declared) !== Number(value)) {
      throw new ApplicationError(
        `Content-Length given twice with different values (${declared} and ${value})`,
      );
    }
    declared = value;
  }
  return declared === undefined ? undefined : Number(declared);
}

/** Finds the first header with this name (case-insensitive); `lowerName` must be lower case. */
export function findHeader(headers: HeaderList, lowerName: string): string | undefined {
  for (const [name, value] of headers) {
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return value;
  }
  return undefined;
}

export function statusCode(status: string): number {
  return (
    (status.charCodeAt(0) - 48) * 100 +
    (status.charCodeAt(1) - 48) * 10 +
    (status.charCodeAt(2) - 48)
  );
}

/** Whether a response with this status may carry a body (RFC 9110: not 1xx, 204, 304). */
export function statusAllowsBody(code: number): boolean {
  return code >= 200 && code !== 204 && code !== 304;
}

/** The CGI response header block (RFC 3875 section 6): `Status:`, the headers, a blank line. */
export function formatCgiHead(status: string, headers: HeaderList): Buffer {
  // [header.latin1] Header text is sent as Latin-1, one byte per character.
  return Buffer.from(cgiHeadText(status, headers), "latin1");
}

/** The same header block as text, one Latin-1 character per byte (validated headers hold nothing else). */
export function cgiHeadText(status: string, headers: HeaderList): string {
  // [cgi.output] Output: a `Status: NNN Reason` line, the headers, a blank line (all ending in CRLF), then the
  // body bytes unchanged.
  // [header.order] A name may repeat (`Set-Cookie`), and the order is kept on the wire.
  return headBlock("Status: " + status, headers);
}

/** An HTTP/1.1 response head (`HTTP/1.1 200 OK`, the headers, a blank line), as uWSGI answers. */
export function formatHttpHead(status: string, headers: HeaderList): Buffer {
  return Buffer.from(headBlock("HTTP/1.1 " + status, headers), "latin1");
}

function headBlock(firstLine: string, headers: HeaderList): string {
  let text = firstLine + "\r\n";
  for (const [name, value] of headers) text += name + ": " + value + "\r\n";
  return text + "\r\n";
}
