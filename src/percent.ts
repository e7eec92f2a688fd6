// Moves a URL path between its two forms: percent-encoded text in a request
// target, and the decoded byte string (one Latin-1 code point per byte) that
// environ holds in PATH_INFO and SCRIPT_NAME.

/**
 * Matches a character no byte decodes to, where an environ string must hold
 * only U+0000..U+00FF (see decodeEnvironBytes in environ.ts). No `g` flag: it keeps no state
 * between calls, so every module can share it.
 */
// eslint-disable-next-line no-control-regex -- U+0000 is the lower end of the Latin-1 range
export const NOT_LATIN1 = /[^\x00-\xff]/;

// What must be encoded in a path: all but RFC 3986 unreserved, sub-delims, ":", "@" and "/".
const PATH_UNSAFE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/g;
// What must be encoded in a query: all but visible ASCII other than "#" ("%" stays: the query is still encoded).
const QUERY_UNSAFE = /[^\x21\x22\x24-\x7e]/g;

/**
 * Percent-decodes a path to bytes and returns them as a Latin-1 string. A "%"
 * not followed by two hex digits stays as it is. Node hands over targets as
 * Latin-1; a string holding wider characters (a rewritten `req.url`) is read as UTF-8.
 */
export function decodePath(path: string): string {
  const wide = NOT_LATIN1.test(path);
  if (!wide && !path.includes("%")) return path;
  const bytes = Buffer.from(path, wide ? "utf8" : "latin1");
  const out = Buffer.allocUnsafe(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    const high = byte === 0x25 ? hexValue(bytes[i + 1]) : -1;
    const low = high >= 0 ? hexValue(bytes[i + 2]) : -1;
    if (low >= 0) {
      out[length++] = high * 16 + low;
      i += 2;
    } else {
      out[length++] = byte;
    }
  }
  return out.toString("latin1", 0, length);
}

/** Percent-encodes a Latin-1 byte string (PATH_INFO, SCRIPT_NAME) so that it can stand in a URL path. */
export function encodePath(bytes: string): string {
  return encodeBytes(bytes, PATH_UNSAFE);
}

/**
 * Makes a raw QUERY_STRING safe for a URL: it is already percent-encoded by the
 * client, so only bytes a URL cannot hold (space, "#", controls, non-ASCII) are encoded.
 */
export function encodeQuery(query: string): string {
  return encodeBytes(query, QUERY_UNSAFE);
}

function encodeBytes(text: string, unsafe: RegExp): string {
  const bytes = NOT_LATIN1.test(text) ? Buffer.from(text, "utf8").toString("latin1") : text;
  return bytes.replace(
    unsafe,
    (char) => "%" + char.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"),
  );
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}
