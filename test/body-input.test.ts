// The input of a request without a body in the one-request-per-connection
// gateways (SCGI, uwsgi): tsgi.input built only when read, and then a stream
// like any other, ended at once.

import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { makeEnviron } from "../src/environ.js";
import { copyEnviron } from "../src/middleware.js";
import { EMPTY_INPUT_KEY, NO_BODY } from "../src/server/body-input.js";

function emptyEnviron() {
  return makeEnviron(
    { REQUEST_METHOD: "GET" },
    { lazyInput: EMPTY_INPUT_KEY, multithread: false, multiprocess: false, runOnce: false },
  );
}

async function bytesOf(stream: Readable): Promise<number> {
  let length = 0;
  for await (const chunk of stream) length += (chunk as Buffer).length;
  return length;
}

describe("tsgi.input of a request without a body", () => {
  it("is an enumerable key, built on first read: an ended Readable, the same one each read", async () => {
    const environ = emptyEnviron();
    expect(Object.keys(environ)).toContain("tsgi.input");
    const descriptor = Object.getOwnPropertyDescriptor(environ, "tsgi.input");
    expect(typeof descriptor?.get).toBe("function");
    const input = environ["tsgi.input"];
    expect(input).toBeInstanceOf(Readable);
    expect(environ["tsgi.input"]).toBe(input);
    expect(Object.getOwnPropertyDescriptor(environ, "tsgi.input")?.value).toBe(input);
    expect(await bytesOf(input)).toBe(0);
  });

  it("each environ gets its own stream", () => {
    expect(emptyEnviron()["tsgi.input"]).not.toBe(emptyEnviron()["tsgi.input"]);
  });

  it("an assignment replaces it before or after it was read", () => {
    const replacement = Readable.from([]);
    const unread = emptyEnviron();
    unread["tsgi.input"] = replacement;
    expect(unread["tsgi.input"]).toBe(replacement);
    const read = emptyEnviron();
    void read["tsgi.input"];
    read["tsgi.input"] = replacement;
    expect(read["tsgi.input"]).toBe(replacement);
  });

  it("a middleware's copy reads the original's stream (built once)", () => {
    const environ = emptyEnviron();
    const copy = copyEnviron(environ);
    expect(copy["tsgi.input"]).toBe(environ["tsgi.input"]);
  });

  it("the connection's side of it is complete and takes no bytes", () => {
    expect([NO_BODY.complete, NO_BODY.remaining, NO_BODY.requested]).toEqual([true, 0, false]);
    const chunk = Buffer.from("past the request");
    expect(NO_BODY.add(chunk)).toEqual({ rest: chunk, more: true });
  });
});
