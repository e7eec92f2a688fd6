// The response of the one-request-per-connection gateways (SCGI, uwsgi): a
// response complete before anything went out leaves in one write, then the
// socket closes; a larger one declines, and goes piece by piece.

import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { formatHttpHead } from "../src/headers.js";
import { StreamResponse } from "../src/server/stream-response.js";

function fakeSocket() {
  const writes: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      writes.push(Buffer.from(chunk));
      callback();
    },
  });
  return { socket: socket as unknown as Socket, writes };
}

describe("StreamResponse.sendWhole", () => {
  it("sends the head and every chunk (strings as UTF-8) in one write, then closes", () => {
    const { socket, writes } = fakeSocket();
    const response = new StreamResponse(socket, formatHttpHead, () => true);
    const body = ["Hello, ", new Uint8Array([0x77, 0x6f]), "", "rld é\n"];
    const headers: [string, string][] = [["Content-Type", "text/plain; charset=utf-8"]];
    expect(response.sendWhole("200 OK", headers, body)).toBe(true);
    expect(writes).toHaveLength(1);
    expect(writes[0].toString("utf8")).toBe(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, world é\n",
    );
    expect([response.finished, response.outputStarted, socket.destroyed]).toEqual([
      true,
      true,
      true,
    ]);
  });

  it("declines a response over 16 KiB, sending nothing", () => {
    const { socket, writes } = fakeSocket();
    const response = new StreamResponse(socket, formatHttpHead, () => true);
    expect(response.sendWhole("200 OK", [], ["x".repeat(16 * 1024)])).toBe(false);
    expect([writes.length, response.finished, response.outputStarted]).toEqual([0, false, false]);
  });
});
