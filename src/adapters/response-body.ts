// The body of a Response made from a string or bytes (`new Response("text")`,
// Hono's c.text and c.json), taken without reading it through its stream.
//
// The fetch API offers no way to ask a Response what it was made from, and a
// ReadableStream read costs several promises per response. Node's fetch
// implementation (undici) keeps the source it was given in an internal state
// slot, as a string or as a copy of the bytes; that slot is found once, by
// making a Response and looking for it, and used only when the body has not
// been touched. Where it is not found (another fetch implementation, a later
// Node keeping it private) every body is read from its stream, as before.
// A Response of the light class (light-response.ts) never gets here while it
// is light; this serves Node's own, made where the light class is not installed
// or turned native by a use of its body.

import type { Chunk } from "../types.js";

interface BodyState {
  readonly body?: { readonly source?: unknown } | null;
}

/** The symbol of the internal state slot, undefined when there is none to use; null until looked for. */
let stateKey: symbol | undefined | null = null;

/** The body as one chunk when the Response was made from a string or bytes and its stream is untouched. */
export function wholeBody(response: Response): Chunk | undefined {
  stateKey ??= findStateKey();
  if (stateKey === undefined) return undefined;
  const state = (response as unknown as Record<symbol, BodyState | undefined>)[stateKey];
  const source = state?.body?.source;
  if (typeof source !== "string" && !(source instanceof Uint8Array)) return undefined;
  // Read or locked: part of the stream may be gone, so the source no longer tells what is left.
  if (response.bodyUsed || response.body?.locked !== false) return undefined;
  return source;
}

function findStateKey(): symbol | undefined {
  const probe = new Response("probe");
  for (const key of Object.getOwnPropertySymbols(probe)) {
    const state = (probe as unknown as Record<symbol, BodyState | undefined>)[key];
    if (state?.body?.source === "probe") return key;
  }
  return undefined;
}
