// The HTTP gateway's access log: one line per request in the common log format,
// with the time the request took appended, written a turn of the event loop at a time.

import type { IncomingMessage } from "node:http";
import type { Writable } from "node:stream";
import type { ServedRequest } from "./handler.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `127.0.0.1 - - [22/Nov/2026:03:07:57 +0100] "GET /x HTTP/1.1" 200 13 1.2ms`, plus the outcome when it was not complete. */
export function accessLogLine(
  req: IncomingMessage,
  served: ServedRequest,
  now: Date = new Date(),
): string {
  const client = (req.socket.remoteAddress ?? "-").replace(/^::ffff:(?=\d+\.)/, "");
  const request = escape(`${req.method ?? "-"} ${req.url ?? "-"} HTTP/${req.httpVersion}`);
  const status = served.status ?? "-";
  const bytes = served.bytes > 0 ? String(served.bytes) : "-";
  const outcome = served.outcome === "complete" ? "" : ` (${served.outcome})`;
  return `${client} - - [${clfDate(now)}] "${request}" ${status} ${bytes} ${served.durationMs.toFixed(1)}ms${outcome}\n`;
}

function clfDate(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const zone = sign + pad(Math.floor(Math.abs(offset) / 60)) + pad(Math.abs(offset) % 60);
  return (
    `${pad(date.getDate())}/${MONTHS[date.getMonth()]}/${date.getFullYear()}:` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`
  );
}

/** A client controls the request line; quotes and control bytes must not break the log line apart. */
function escape(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex -- control bytes are what is escaped
    /["\\\x00-\x1f\x7f-\xff]/g,
    (char) => "\\x" + char.charCodeAt(0).toString(16).padStart(2, "0"),
  );
}

/** The flushes of batched writes that have lines waiting, run at exit if their turn has not come. */
const pendingFlushes = new Set<() => void>();
let flushAtExit = false;

/**
 * Writes the lines given in one turn of the event loop together, at its end: a
 * write per request (synchronous to a file or a terminal) cost `tsgi serve`
 * about a fifth of its throughput behind a proxy. What is pending is written
 * before the process exits.
 */
export function batchedWrites(stream: Writable): (line: string) => void {
  let pending = "";
  const flush = () => {
    pendingFlushes.delete(flush);
    if (pending === "") return;
    const text = pending;
    pending = "";
    try {
      stream.write(text);
    } catch {
      // Nowhere left to write to.
    }
  };
  return (line) => {
    if (pending === "") {
      setImmediate(flush);
      pendingFlushes.add(flush);
      if (!flushAtExit) {
        flushAtExit = true;
        process.once("exit", () => {
          for (const pendingFlush of pendingFlushes) pendingFlush();
        });
      }
    }
    pending += line;
  };
}
