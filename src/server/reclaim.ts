// Gives back the memory of request bodies that have been read.
//
// Node reads every socket chunk into a fresh buffer of up to 64 KiB. Once a
// body's chunks are consumed they are garbage, but their memory lies outside
// V8's heap and the small objects pointing at it do not fill the young
// generation, so a large upload piles up tens of MiB before any collection
// runs. A minor collection (well under a millisecond when little is alive)
// after every few MiB of body keeps that pile small. No public API offers it,
// so the collector is reached once through V8's --expose-gc flag.
//
// Setting a V8 flag changes the whole process, which a library must not do to
// its host: this runs only when asked for (the servers' `reclaimBodyMemory`,
// which `tsgi fcgi`, `scgi` and `uwsgi` set, owning their process), and the flag is set at the first
// collection, not before.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Body bytes received between two collections. */
const RECLAIM_EVERY = 2 * 1024 * 1024;

type Collector = (options: { type: "minor" | "major" }) => void;
let collect: Collector | null | undefined;
let received = 0;
let scheduled = false;

function collector(): Collector | null {
  if (collect === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as Collector;
    } catch {
      collect = null;
    }
  }
  return collect;
}

function reclaim(): void {
  scheduled = false;
  collector()?.({ type: "minor" });
}

/** Counts body bytes received; now and then schedules a minor collection. */
export function bodyBytesReceived(bytes: number): void {
  received += bytes;
  if (received < RECLAIM_EVERY || scheduled) return;
  received = 0;
  scheduled = true;
  setImmediate(reclaim);
}
