// The SCGI wire format (python.ca/scgi/protocol.txt): the request is a
// netstring (`<length>:<block>,`) whose block is NUL-terminated name and value
// strings, then the body; the response is CGI-style (`Status:` and headers).
// Hand-written: it is a few lines, and no maintained package parses SCGI.

import { decodeEnvironRange } from "../environ.js";
import { BadRequest } from "../server/request-connection.js";
import { VarNames } from "../server/var-names.js";

/** Digits a netstring's length may have: more would be over any header limit. */
const MAX_LENGTH_DIGITS = 9;
const COLON = 0x3a;
const COMMA = 0x2c;

/** The size of the whole netstring (`<length>:`, the block, `,`) once its length is in, else undefined. */
export function scgiHeadSize(start: Buffer): number | undefined {
  const colon = start.indexOf(COLON);
  const digits = colon < 0 ? start.length : colon;
  if (digits > MAX_LENGTH_DIGITS || (colon === 0 && start.length > 0))
    throw new BadRequest("400 Bad Request", "malformed netstring: no length before ':'");
  for (let i = 0; i < digits; i++)
    if (start[i] < 0x30 || start[i] > 0x39)
      throw new BadRequest("400 Bad Request", "malformed netstring: its length is not a number");
  if (colon < 0) return undefined;
  return colon + 1 + Number(start.toString("latin1", 0, colon)) + 1;
}

/**
 * The variables of a whole netstring; a name sent twice keeps its last value.
 * The SCGI protocol requires CONTENT_LENGTH as the first variable (even for no
 * body) and SCGI = "1" among them (lighttpd sends it last): a block without
 * either is not an SCGI request, and is refused.
 */
export function parseScgiHead(head: Buffer): Record<string, string> {
  const vars = parseVariables(head);
  // [scgi.head] An SCGI header block begins with `CONTENT_LENGTH` (empty for no body) and holds `SCGI` = `1`
  // anywhere, as the SCGI protocol requires; a block that does not is malformed (`400`, with a log line).
  if (firstName(head) !== "CONTENT_LENGTH")
    throw new BadRequest("400 Bad Request", "SCGI headers must begin with CONTENT_LENGTH");
  if (vars.SCGI !== "1") throw new BadRequest("400 Bad Request", 'SCGI headers lack SCGI = "1"');
  return vars;
}

function firstName(head: Buffer): string {
  const start = head.indexOf(COLON) + 1;
  return head.toString("latin1", start, Math.max(start, head.indexOf(0, start)));
}

const names = new VarNames();

function parseVariables(head: Buffer): Record<string, string> {
  const colon = head.indexOf(COLON);
  if (head[head.length - 1] !== COMMA)
    throw new BadRequest("400 Bad Request", "malformed netstring: it does not end with ','");
  const block = head.subarray(colon + 1, head.length - 1);
  if (block.length > 0 && block[block.length - 1] !== 0)
    throw new BadRequest("400 Bad Request", "malformed SCGI headers: the last one has no NUL");
  // Decoded once (Latin-1: a character per byte, so offsets stay byte offsets); each
  // name and value is then a piece of that string.
  const text = decodeEnvironRange(block, 0, block.length);
  const vars: Record<string, string> = {};
  let at = 0;
  for (let index = 0; at < text.length; index++) {
    const nameEnd = text.indexOf("\0", at);
    const valueEnd = text.indexOf("\0", nameEnd + 1);
    if (valueEnd < 0)
      throw new BadRequest("400 Bad Request", "malformed SCGI headers: a name without a value");
    if (nameEnd === at)
      throw new BadRequest("400 Bad Request", "malformed SCGI headers: empty name");
    vars[names.name(index, text, at, nameEnd)] = text.slice(nameEnd + 1, valueEnd);
    at = valueEnd + 1;
  }
  return vars;
}
