// The uwsgi wire format (uwsgi-docs.readthedocs.io, "The uwsgi protocol"): a
// 4-byte header (modifier1, 16-bit little-endian size of the vars block,
// modifier2), the vars as pairs of 16-bit little-endian length-prefixed
// strings, then the body; the response is a full HTTP status line and headers.
// Hand-written: it is a few lines, and no maintained package parses it.

import { decodeEnvironRange } from "../environ.js";
import { BadRequest } from "../server/request-connection.js";
import { VarNames } from "../server/var-names.js";

const HEADER_BYTES = 4;
/** modifier1 0: a WSGI-style request (what nginx's uwsgi_pass sends). */
export const MODIFIER_WSGI = 0;
/** modifier1 30: the same, with SCRIPT_NAME taken off the front of PATH_INFO (mounting under a prefix). */
export const MODIFIER_STRIP_SCRIPT_NAME = 30;

/** The size of the whole packet head (4-byte header and vars) once the header is in, else undefined. */
export function uwsgiHeadSize(start: Buffer): number | undefined {
  if (start.length < HEADER_BYTES) return undefined;
  return HEADER_BYTES + start.readUInt16LE(1);
}

/** The variables of a whole packet head, by its modifier1; a variable sent twice keeps its last value. */
export function parseUwsgiHead(head: Buffer): Record<string, string> {
  // [uwsgi.modifier] uwsgi `modifier1` `0` and `30` are served, `30` with `SCRIPT_NAME` taken off the front of
  // `PATH_INFO`; any other `modifier1` is answered `501` with a log line.
  const modifier1 = head[0];
  if (modifier1 !== MODIFIER_WSGI && modifier1 !== MODIFIER_STRIP_SCRIPT_NAME)
    throw new BadRequest(
      "501 Not Implemented",
      `uwsgi modifier1 ${modifier1} is not supported (only 0 and 30)`,
    );
  const vars = parseVars(head);
  if (modifier1 === MODIFIER_STRIP_SCRIPT_NAME) stripScriptName(vars);
  return vars;
}

const names = new VarNames();

/** The vars block of a whole packet head (after its 4-byte header). */
function parseVars(head: Buffer): Record<string, string> {
  // Decoded once (Latin-1: a character per byte, so offsets stay byte offsets); each
  // name and value is then a piece of that string.
  const text = decodeEnvironRange(head, 0, head.length);
  const vars: Record<string, string> = {};
  let at = HEADER_BYTES;
  /** The end of the string whose 16-bit length is at `at`, which then moves past it. */
  const next = (what: string): number => {
    if (at + 2 > head.length) throw malformed(`the length of a ${what} is cut short`);
    const length = head[at] | (head[at + 1] << 8);
    const end = at + 2 + length;
    if (end > head.length) throw malformed(`a ${what} of ${length} bytes runs past the block`);
    at = end;
    return end;
  };
  for (let index = 0; at < head.length; index++) {
    const nameStart = at + 2;
    const nameEnd = next("name");
    if (nameEnd === nameStart) throw malformed("empty name");
    const valueStart = at + 2;
    const valueEnd = next("value");
    vars[names.name(index, text, nameStart, nameEnd)] = text.slice(valueStart, valueEnd);
  }
  return vars;
}

function malformed(message: string): BadRequest {
  return new BadRequest("400 Bad Request", `malformed uwsgi vars: ${message}`);
}

/** As uWSGI does for modifier1 30: PATH_INFO loses SCRIPT_NAME at its front. */
function stripScriptName(vars: Record<string, string>): void {
  const script = vars.SCRIPT_NAME;
  const path = vars.PATH_INFO;
  if (script && path !== undefined && path.startsWith(script))
    vars.PATH_INFO = path.slice(script.length);
}
