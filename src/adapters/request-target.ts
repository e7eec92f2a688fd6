// What an adapted application routes on. A gateway splits the public path into
// SCRIPT_NAME (where the application is mounted) and PATH_INFO (the rest), as
// PEP 3333 and RFC 3875 §4.1.5 do; a Node or fetch application routes on the
// rest, so it works unchanged under any prefix, behind a rewrite, or in mount().
//
// [adapter.mount] An adapted application routes on `PATH_INFO`, relative to where it is mounted, so the same
// application serves at the root, under a prefix, behind a rewrite and inside `mount()`.
//
// The environ holds both parts decoded. Re-encoding them loses what the client
// meant by "%2F" (an escaped slash is not a separator) and repairs a lone "%"
// the framework should refuse, so where the raw REQUEST_URI still decodes to
// the same path, its raw form is used instead.

import { decodePath, encodePath } from "../percent.js";
import type { Environ } from "../types.js";

const NOT_VISIBLE_ASCII = /[^\x21-\x7e]/;

/** The request target as an adapted application sees it. */
export interface RequestTarget {
  /** Where the application is mounted, percent-encoded: "" at the root, else "/prefix". */
  readonly base: string;
  /** The path it routes on: PATH_INFO percent-encoded, "/" when PATH_INFO is empty. */
  readonly path: string;
}

/** SCRIPT_NAME and PATH_INFO, encoded, or taken raw from REQUEST_URI where it agrees with them. */
export function requestTarget(environ: Environ): RequestTarget {
  const scriptName = environ.SCRIPT_NAME;
  const pathInfo = environ.PATH_INFO;
  const raw = rawTarget(environ.REQUEST_URI, scriptName, pathInfo);
  const base = raw?.base ?? encodePath(scriptName);
  const path = raw?.path ?? encodePath(pathInfo);
  return { base, path: path.startsWith("/") ? path : "/" + path };
}

/**
 * The raw path of REQUEST_URI cut where its decoded form turns from
 * SCRIPT_NAME into PATH_INFO; undefined when it does not decode to PATH_INFO
 * at its end (a rewrite changed it, or the front end normalised it). The base
 * is raw only when the decoded rest is exactly SCRIPT_NAME.
 */
function rawTarget(
  uri: string | undefined,
  scriptName: string,
  pathInfo: string,
): { base: string | undefined; path: string } | undefined {
  if (typeof uri !== "string" || !uri.startsWith("/")) return undefined;
  const query = uri.indexOf("?");
  const rawPath = query < 0 ? uri : uri.slice(0, query);
  // A target as sent on the wire is visible ASCII; anything else is left to encodePath.
  if (NOT_VISIBLE_ASCII.test(rawPath)) return undefined;
  const decoded = decodePath(rawPath);
  if (decoded.length === rawPath.length) {
    // Nothing was escaped: raw and decoded are the same string.
    if (!rawPath.endsWith(pathInfo)) return undefined;
    const cut = rawPath.length - pathInfo.length;
    const base = rawPath.slice(0, cut);
    return { base: base === scriptName ? base : undefined, path: rawPath.slice(cut) };
  }
  if (!decoded.endsWith(pathInfo)) return undefined;
  const prefix = decoded.slice(0, decoded.length - pathInfo.length);
  const cut = rawIndexOf(rawPath, prefix.length);
  if (cut < 0) return undefined;
  return {
    base: prefix === scriptName ? rawPath.slice(0, cut) : undefined,
    path: rawPath.slice(cut),
  };
}

/** The index in a raw path after which `decodedLength` bytes have been decoded (-1 if none). */
function rawIndexOf(rawPath: string, decodedLength: number): number {
  let count = 0;
  let index = 0;
  while (count < decodedLength && index < rawPath.length) {
    index += isEscape(rawPath, index) ? 3 : 1;
    count++;
  }
  return count === decodedLength ? index : -1;
}

function isEscape(text: string, at: number): boolean {
  return text[at] === "%" && /^[0-9A-Fa-f]{2}$/.test(text.slice(at + 1, at + 3));
}
