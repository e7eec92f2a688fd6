// Unit tests for the shared response engine (src/engine.ts): runApplication
// drives an application into an in-memory sink, and the bytes are compared in
// the CGI format. Each case names the rule of docs/SPEC.md it checks.

import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ConnectionClosedError, runApplication, type Outcome } from "../src/engine.js";
import { makeEnviron } from "../src/environ.js";
import { ApplicationError } from "../src/headers.js";
import type { Application, Body, Chunk, Environ, HeaderList } from "../src/types.js";
import { RecordingSink, TextCollector } from "./helpers/sinks.js";

/** A sink that also takes complete responses whole (as the FastCGI gateway does), or declines them. */
class WholeSink extends RecordingSink {
  /** What sendWhole does: take the response, decline it, or throw (the peer went away). */
  constructor(private readonly answer: "take" | "decline" | "throw" = "take") {
    super();
  }

  sendWhole(status: string, headers: HeaderList, body: readonly Chunk[]): boolean {
    if (this.answer === "throw")
      throw new ConnectionClosedError("the web server closed the connection");
    if (this.answer === "decline") return false;
    const data = Buffer.concat(
      body.map((chunk) =>
        typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk),
      ),
    );
    this.events.push({
      kind: "whole",
      status,
      headers: headers.map(([name, value]) => [name, value]),
      data,
    });
    return true;
  }
}

function testEnviron(method = "GET"): { environ: Environ; errorLog: () => string } {
  const errors = new TextCollector();
  const input = new PassThrough();
  input.end();
  const environ = makeEnviron(
    { REQUEST_METHOD: method, SCRIPT_NAME: "/app", PATH_INFO: "/where", QUERY_STRING: "" },
    { input, errors, multithread: false, multiprocess: true, runOnce: true },
  );
  return { environ, errorLog: () => errors.text };
}

interface Run {
  outcome: Outcome;
  sink: RecordingSink;
  text: string;
  errorLog: string;
}

async function run(app: Application, sink = new RecordingSink(), method = "GET"): Promise<Run> {
  const { environ, errorLog } = testEnviron(method);
  const outcome = await runApplication(app, environ, sink);
  return { outcome, sink, text: sink.text(), errorLog: errorLog() };
}

/** An application that sends `body` after calling startResponse with `status` and `headers`. */
function respond(status: string, headers: HeaderList, body: Body): Application {
  return (_environ, startResponse) => {
    startResponse(status, headers);
    return body;
  };
}

/** A body that counts close() calls. */
function closable<T extends object>(body: T): T & { close: () => void; closeCalls: number } {
  const counted = body as T & { close: () => void; closeCalls: number };
  counted.closeCalls = 0;
  counted.close = () => {
    counted.closeCalls++;
  };
  return counted;
}

const ERROR_RESPONSE =
  "Status: 500 Internal Server Error\r\n" +
  "Content-Type: text/plain; charset=utf-8\r\n" +
  "Content-Length: 22\r\n" +
  "\r\n" +
  "Internal Server Error\n";

/** Lets pending promise callbacks and timers run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

function deferred(): {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
} {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("Content-Length", () => {
  it("adds Content-Length to a single-chunk body [length.single-chunk]", async () => {
    const result = await run(respond("200 OK", [], [Buffer.from("http")]));
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 4\r\n\r\nhttp");
    expect(result.outcome).toBe("complete");
    expect(result.sink.count("end")).toBe(1);
  });

  it("adds no Content-Length when the application used write() [length.single-chunk]", async () => {
    const result = await run((_environ, startResponse) => {
      const write = startResponse("200 OK", []);
      void write("http");
      return [];
    });
    expect(result.text).toBe("Status: 200 OK\r\n\r\nhttp");
    expect(result.outcome).toBe("complete");
  });

  it("adds no Content-Length to a body of two chunks [length.single-chunk]", async () => {
    const result = await run(respond("200 OK", [], [Buffer.from("a"), Buffer.from("b")]));
    expect(result.text).toBe("Status: 200 OK\r\n\r\nab");
  });

  it("sends the headers with Content-Length: 0 for an empty body [length.empty]", async () => {
    const result = await run(respond("200 OK", [], []));
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 0\r\n\r\n");
    expect(result.sink.count("headers")).toBe(1);
  });

  it("keeps the Content-Length an application set for a HEAD request with an empty body [length.given]", async () => {
    const result = await run(
      respond("200 OK", [["Content-Length", "12345"]], []),
      new RecordingSink(),
      "HEAD",
    );
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 12345\r\n\r\n");
    expect(result.outcome).toBe("complete");
  });

  it.each([
    ["an empty body", () => respond("200 OK", [], [])],
    ["empty chunks only", () => respond("200 OK", [], ["", new Uint8Array(0)])],
    ["a generator that yields nothing", () => respond("200 OK", [], (function* () {})())],
  ])(
    "adds no Content-Length: 0 to a HEAD response with %s: it would announce a wrong length (RFC 9110 8.6)",
    async (_name, app) => {
      for (const sink of [new RecordingSink(), new WholeSink()]) {
        const result = await run(app(), sink, "HEAD");
        expect(result.text).toBe("Status: 200 OK\r\n\r\n");
        expect(result.outcome).toBe("complete");
      }
    },
  );

  it("gives a HEAD response with a one-chunk body the Content-Length the GET would have", async () => {
    const result = await run(respond("200 OK", [], ["hello"]), new RecordingSink(), "HEAD");
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  });

  it("keeps an application's Content-Length on a single chunk, whatever its case, without adding another", async () => {
    const result = await run(respond("200 OK", [["content-length", "4"]], ["http"]));
    expect(result.text).toBe("Status: 200 OK\r\ncontent-length: 4\r\n\r\nhttp");
  });

  it("counts bytes, not characters, for a single string chunk [length.single-chunk]", async () => {
    const result = await run(respond("200 OK", [], ["тест"]));
    expect(result.sink.output()).toEqual(
      Buffer.concat([
        Buffer.from("Status: 200 OK\r\nContent-Length: 8\r\n\r\n"),
        Buffer.from("тест", "utf8"),
      ]),
    );
  });

  it.each([
    ["204 No Content", "Status: 204 No Content\r\n\r\n"],
    ["304 Not Modified", "Status: 304 Not Modified\r\n\r\n"],
    ["205 Reset Content", "Status: 205 Reset Content\r\n\r\n"],
  ])("adds no Content-Length: 0 for %s", async (status, expected) => {
    const result = await run(respond(status, [], []));
    expect(result.text).toBe(expected);
  });

  it("sends a string chunk as UTF-8", async () => {
    const result = await run(respond("200 OK", [], ["é", "€"]));
    expect(result.sink.output().subarray(-5)).toEqual(Buffer.from([0xc3, 0xa9, 0xe2, 0x82, 0xac]));
  });
});

describe("a declared Content-Length is enforced", () => {
  const sinks = [
    ["the general path", () => new RecordingSink()],
    ["a sink taking whole responses", () => new WholeSink()],
  ] as const;

  it.each(sinks)("sends no byte past it and logs the overrun (%s)", async (_name, sink) => {
    const result = await run(
      respond("200 OK", [["Content-Length", "3"]], ["abc", "defgh", "ijk"]),
      sink(),
    );
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    expect(result.outcome).toBe("complete");
    expect(result.sink.count("end")).toBe(1);
    expect(result.errorLog).toMatch(
      /GET \/app\/where: the body is longer than its Content-Length \(3\): the bytes past it are not sent/,
    );
    expect(result.errorLog.match(/longer than its Content-Length/g)).toHaveLength(1);
  });

  it("trims an overrun inside one chunk, and one made with write()", async () => {
    const chunked = await run(respond("200 OK", [["Content-Length", "3"]], ["abcdefghijk"]));
    expect(chunked.text).toBe("Status: 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    const written = await run((_environ, startResponse) => {
      const write = startResponse("200 OK", [["content-length", "4"]]);
      void write("ab");
      void write("cdef");
      return ["gh"];
    });
    expect(written.text).toBe("Status: 200 OK\r\ncontent-length: 4\r\n\r\nabcd");
    expect(written.outcome).toBe("complete");
  });

  it.each(sinks)(
    "cuts off a body that ends short of it, logged, never ended cleanly (%s)",
    async (_name, sink) => {
      const result = await run(
        respond("200 OK", [["Content-Length", "50"]], ["abc", "def"]),
        sink(),
      );
      expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 50\r\n\r\nabcdef");
      expect(result.outcome).toBe("cut");
      expect(result.sink.count("end")).toBe(0);
      expect(result.sink.count("abort")).toBe(1);
      expect(result.errorLog).toMatch(
        /response cut off: the body ended after 6 of the 50 bytes its Content-Length announced/,
      );
    },
  );

  it("answers 500 when the body is empty but its Content-Length is not: nothing went out yet", async () => {
    const result = await run(respond("200 OK", [["Content-Length", "50"]], []));
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.outcome).toBe("failed");
    expect(result.errorLog).toMatch(/the body is empty, but its Content-Length announced 50 bytes/);
  });

  it.each([
    ["HEAD", "200 OK", ["abc"]],
    ["GET", "304 Not Modified", []],
    ["GET", "204 No Content", []],
  ] as const)("does not count the body of a %s %s response", async (method, status, body) => {
    const result = await run(
      respond(status, [["Content-Length", "99"]], [...body]),
      new RecordingSink(),
      method,
    );
    expect(result.outcome).toBe("complete");
    expect(result.text).toBe(`Status: ${status}\r\nContent-Length: 99\r\n\r\n${body.join("")}`);
  });

  it.each([["abc"], ["-1"], ["1.5"], [" 3"], ["3, 3"]])(
    "refuses Content-Length %j with a 500 (not a number the body can be counted against)",
    async (value) => {
      const result = await run(respond("200 OK", [["Content-Length", value]], ["abc"]));
      expect(result.text).toBe(ERROR_RESPONSE);
      expect(result.errorLog).toMatch(/invalid Content-Length/);
    },
  );

  it("refuses two Content-Length headers that disagree, and takes two that agree", async () => {
    const disagree = await run(
      respond(
        "200 OK",
        [
          ["Content-Length", "3"],
          ["content-length", "4"],
        ],
        ["abc"],
      ),
    );
    expect(disagree.text).toBe(ERROR_RESPONSE);
    const agree = await run(
      respond(
        "200 OK",
        [
          ["Content-Length", "3"],
          ["content-length", "3"],
        ],
        ["abc"],
      ),
    );
    expect(agree.outcome).toBe("complete");
  });

  it("counts a streamed async body too, and cuts it when short", async () => {
    const result = await run(
      respond(
        "200 OK",
        [["Content-Length", "10"]],
        (async function* () {
          yield "12345";
          yield "678";
        })(),
      ),
    );
    expect(result.outcome).toBe("cut");
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 10\r\n\r\n12345678");
  });
});

describe("a sink that takes complete responses whole", () => {
  // Each case runs through a plain sink and a whole-taking one: the bytes must match.
  async function both(
    app: () => Application,
    answer: "take" | "decline" = "take",
  ): Promise<{ plain: Run; whole: Run }> {
    return { plain: await run(app()), whole: await run(app(), new WholeSink(answer)) };
  }

  it.each([
    [
      "one string chunk",
      () => respond("200 OK", [["Content-Type", "text/plain"]], ["тест"]),
      "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\n",
    ],
    [
      "an empty body",
      () => respond("200 OK", [], []),
      "Status: 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
    [
      "empty chunks only",
      () => respond("200 OK", [], ["", new Uint8Array(0)]),
      "Status: 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
    [
      "a 204 with no body",
      () => respond("204 No Content", [], []),
      "Status: 204 No Content\r\n\r\n",
    ],
    [
      "two chunks, bytes and text",
      () => respond("200 OK", [], [Buffer.from("a"), "é"]),
      "Status: 200 OK\r\n\r\n",
    ],
    [
      "the app's own Content-Length",
      () => respond("200 OK", [["content-length", "4"]], ["http"]),
      "Status: 200 OK\r\ncontent-length: 4\r\n\r\n",
    ],
  ])("sends %s in one call, with the same bytes as the general path", async (_name, app, head) => {
    const { plain, whole } = await both(app);
    expect(whole.sink.count("whole")).toBe(1);
    expect(whole.sink.events.map((event) => event.kind)).toEqual(["whole"]);
    expect(whole.outcome).toBe("complete");
    expect(whole.sink.output()).toEqual(plain.sink.output());
    expect(whole.text.startsWith(head)).toBe(true);
  });

  it("falls back to headers, writes and end when the sink declines, with the same bytes", async () => {
    const { plain, whole } = await both(() => respond("200 OK", [], ["a", "b"]), "decline");
    expect(whole.sink.count("whole")).toBe(0);
    expect(whole.sink.events.map((event) => event.kind)).toEqual([
      "headers",
      "write",
      "write",
      "end",
    ]);
    expect(whole.sink.output()).toEqual(plain.sink.output());
  });

  it.each([
    [
      "a generator",
      () =>
        respond(
          "200 OK",
          [],
          (function* () {
            yield "x";
          })(),
        ),
    ],
    [
      "an array with its own iterator",
      () => {
        const body = ["x"];
        (body as { [Symbol.iterator]: () => Iterator<string> })[Symbol.iterator] = function* () {
          yield "y";
        };
        return respond("200 OK", [], body);
      },
    ],
    [
      "a body after write()",
      () => (_environ: Environ, startResponse: Parameters<Application>[1]) => {
        void startResponse("200 OK", [])("w");
        return ["x"];
      },
    ],
  ])("streams %s piece by piece", async (_name, app) => {
    const { plain, whole } = await both(app);
    expect(whole.sink.count("whole")).toBe(0);
    expect(whole.sink.count("end")).toBe(1);
    expect(whole.sink.output()).toEqual(plain.sink.output());
  });

  it("leaves an array holding a bad chunk to the general path, which sends what came before and cuts the response off", async () => {
    const { plain, whole } = await both(() =>
      respond("200 OK", [], ["ok", 42 as unknown as Chunk]),
    );
    expect(whole.sink.count("whole")).toBe(0);
    expect(whole.outcome).toBe(plain.outcome);
    expect(whole.outcome).toBe("cut");
    expect(whole.sink.output()).toEqual(plain.sink.output());
  });

  it.each([
    ["whole", () => new WholeSink()],
    ["piece by piece", () => new WholeSink("decline")],
    ["to a sink without sendWhole", () => new RecordingSink()],
  ])(
    "reads each element of an array body once, so a getter cannot make the Content-Length and the bytes differ (sent %s)",
    async (_name, sink) => {
      let reads = 0;
      const body: Chunk[] = [];
      Object.defineProperty(body, 0, { enumerable: true, get: () => "x".repeat(++reads) });
      const result = await run(respond("200 OK", [], body), sink());
      expect(reads).toBe(1);
      expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 1\r\n\r\nx");
    },
  );

  it("calls close() exactly once on an array body sent whole", async () => {
    const body = closable(["done"]);
    const result = await run(respond("200 OK", [], body), new WholeSink());
    expect(result.sink.count("whole")).toBe(1);
    expect(body.closeCalls).toBe(1);
  });

  it("reports the request aborted, and still calls close(), when the peer is gone as the response is sent whole", async () => {
    const body = closable(["done"]);
    const result = await run(respond("200 OK", [], body), new WholeSink("throw"));
    expect(result.outcome).toBe("aborted");
    expect(result.sink.count("abort")).toBe(1);
    expect(body.closeCalls).toBe(1);
  });
});

describe("header deferral", () => {
  it("holds the headers back while the body yields only empty chunks", async () => {
    let eventsBeforeFirstByte = -1;
    const sink = new RecordingSink();
    const result = await run((_environ, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return (function* () {
        yield "";
        yield new Uint8Array(0);
        eventsBeforeFirstByte = sink.events.length;
        yield "x";
      })();
    }, sink);
    expect(eventsBeforeFirstByte).toBe(0);
    expect(result.text).toBe("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nx");
  });

  it("turns an error after an empty first chunk into a 500, since nothing was sent [error.before-headers]", async () => {
    const result = await run((_environ, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return (function* () {
        yield "";
        throw new Error("late failure");
      })();
    });
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.outcome).toBe("failed");
  });

  it("sends write() output at once, before the application returns", async () => {
    let eventsSeenByApp: string[] = [];
    const sink = new RecordingSink();
    const result = await run((_environ, startResponse) => {
      const write = startResponse("200 OK", []);
      void write("now");
      eventsSeenByApp = sink.events.map((event) => event.kind);
      return ["later"];
    }, sink);
    expect(eventsSeenByApp).toEqual(["headers", "write"]);
    expect(result.text).toBe("Status: 200 OK\r\n\r\nnowlater");
  });

  it("sends the headers at once when an empty chunk is written through write(), and asks the sink to flush [write.flush]", async () => {
    let eventsSeenByApp: string[] = [];
    let flushes = 0;
    const sink = new RecordingSink();
    Object.assign(sink, { flush: () => flushes++ });
    const result = await run((_environ, startResponse) => {
      const write = startResponse("200 OK", [["Content-Type", "text/event-stream"]]);
      void write("");
      void write("");
      eventsSeenByApp = sink.events.map((event) => event.kind);
      return (async function* () {
        await settle();
        yield "data: 1\n\n";
      })();
    }, sink);
    expect(eventsSeenByApp).toEqual(["headers"]);
    expect(flushes).toBe(1);
    expect(result.text).toBe(
      "Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n",
    );
  });

  it("cuts the response off on an error after write('') sent the headers [output.held]", async () => {
    const result = await run((_environ, startResponse) => {
      void startResponse("200 OK", [])("");
      throw new Error("after the headers");
    });
    expect(result.outcome).toBe("cut");
    expect(result.text).toBe("Status: 200 OK\r\n\r\n");
  });

  it("works when startResponse is first called inside the body generator [body.lazy-start]", async () => {
    const result = await run((_environ, startResponse) =>
      (function* () {
        startResponse("201 Created", [["X-Lazy", "yes"]]);
        yield "made";
      })(),
    );
    expect(result.text).toBe("Status: 201 Created\r\nX-Lazy: yes\r\n\r\nmade");
    expect(result.outcome).toBe("complete");
  });

  it("accepts an async application returning an async iterable", async () => {
    const result = await run(async (_environ, startResponse) => {
      await settle();
      startResponse("200 OK", []);
      return (async function* () {
        yield "a";
        await settle();
        yield Buffer.from("b");
      })();
    });
    expect(result.text).toBe("Status: 200 OK\r\n\r\nab");
  });
});

describe("tsgi.get_signal [env.signal]", () => {
  it("is the sink's signal, read when the application asks", async () => {
    const sink = new RecordingSink(true);
    let seen: unknown;
    await run((environ, startResponse) => {
      seen = environ["tsgi.get_signal"]?.();
      startResponse("200 OK", []);
      return [];
    }, sink);
    expect(seen).toBe(sink.signal);
    expect(seen).toBeInstanceOf(AbortSignal);
  });

  it("is undefined where the sink cannot tell, and a gateway's own value is kept", async () => {
    let seen: unknown = "unset";
    await run((environ, startResponse) => {
      seen = environ["tsgi.get_signal"]?.();
      startResponse("200 OK", []);
      return [];
    });
    expect(seen).toBeUndefined();
    const own = new AbortController().signal;
    const { environ } = testEnviron();
    (environ as unknown as Record<string, unknown>)["tsgi.get_signal"] = () => own;
    await runApplication(
      (env, startResponse) => {
        seen = env["tsgi.get_signal"]?.();
        startResponse("200 OK", []);
        return [];
      },
      environ,
      new RecordingSink(true),
    );
    expect(seen).toBe(own);
  });
});

describe("errors", () => {
  it("answers 500 with a short plain body when the application throws before output; the stack goes only to tsgi.errors [error.before-headers]", async () => {
    const result = await run(() => {
      throw new Error("secret database password wrong");
    });
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.outcome).toBe("failed");
    expect(result.errorLog).toContain("secret database password wrong");
    expect(result.errorLog).toMatch(/at .*engine\.test\.ts/); // the stack, not just the message
    expect(result.text).not.toContain("secret");
  });

  it("answers 500 when an async application rejects", async () => {
    const result = await run(async () => {
      await settle();
      throw new Error("rejected");
    });
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.errorLog).toContain("rejected");
  });

  it("answers 500 when the application throws something that is not an Error", async () => {
    const result = await run(() => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what an application may throw, which the engine must report
      throw "just a string";
    });
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.errorLog).toContain("just a string");
  });

  it("keeps what was sent, logs, and cuts the response off when the error comes after output [error.after-headers]", async () => {
    const result = await run((_environ, startResponse) => {
      startResponse("200 OK", []);
      return (function* () {
        yield "Some output has been sent";
        throw new Error("too late");
      })();
    });
    expect(result.text).toBe("Status: 200 OK\r\n\r\nSome output has been sent");
    expect(result.outcome).toBe("cut");
    expect(result.sink.count("headers")).toBe(1);
    expect(result.sink.count("end")).toBe(0);
    expect(result.sink.count("abort")).toBe(1);
    expect(result.errorLog).toContain("too late");
  });

  it("makes a second startResponse without excInfo throw, and a 500 when the app lets it escape [start.once]", async () => {
    let thrown: unknown;
    const caught = await run((_environ, startResponse) => {
      startResponse("200 OK", []);
      try {
        startResponse("201 Created", []);
      } catch (error) {
        thrown = error;
      }
      return ["first"];
    });
    expect(thrown).toBeInstanceOf(ApplicationError);
    expect(caught.text).toBe("Status: 200 OK\r\nContent-Length: 5\r\n\r\nfirst");

    const escaped = await run((_environ, startResponse) => {
      startResponse("200 OK", []);
      startResponse("201 Created", []);
      return ["never"];
    });
    expect(escaped.text).toBe(ERROR_RESPONSE);
    expect(escaped.errorLog).toContain("second time");
  });

  it("lets startResponse with excInfo replace status and headers before output [start.exc-replace]", async () => {
    const result = await run((_environ, startResponse) => {
      startResponse("200 OK", [["X-Original", "1"]]);
      try {
        throw new Error("handled");
      } catch (error) {
        startResponse("500 Oops", [["Content-Type", "text/plain"]], error);
        return ["err"];
      }
    });
    expect(result.text).toBe(
      "Status: 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nerr",
    );
    expect(result.outcome).toBe("complete");
  });

  it("makes startResponse with excInfo rethrow that very error once output went out [start.exc-rethrow]", async () => {
    const original = new Error("original failure");
    let rethrown: unknown;
    const result = await run((_environ, startResponse) => {
      startResponse("200 OK", []);
      return (function* () {
        yield "partial";
        try {
          startResponse("500 Oops", [], original);
        } catch (error) {
          rethrown = error;
          throw error;
        }
      })();
    });
    expect(rethrown).toBe(original);
    expect(result.text).toBe("Status: 200 OK\r\n\r\npartial");
    expect(result.outcome).toBe("cut");
    expect(result.errorLog).toContain("original failure");
  });

  it("answers 500 when the application returns a body without calling startResponse [body.lazy-start]", async () => {
    const nonEmpty = await run(() => ["orphan"]);
    expect(nonEmpty.text).toBe(ERROR_RESPONSE);
    expect(nonEmpty.errorLog).toContain("without calling startResponse");

    const empty = await run(() => []);
    expect(empty.text).toBe(ERROR_RESPONSE);
  });

  it.each([
    ["a number", [42]],
    ["a plain object", [{ toString: () => "x" }]],
    ["null", [null]],
  ])("answers 500 before any output for a chunk that is %s [body.chunk]", async (_what, body) => {
    const result = await run(respond("200 OK", [], body as unknown as Chunk[]));
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.errorLog).toContain("a body chunk must be a Uint8Array or a string");
  });

  it.each([
    ["a bare string", "hello"],
    ["a bare Uint8Array", Buffer.from("hello")],
    ["undefined", undefined],
    ["a number", 7],
  ])("answers 500 for a body that is %s instead of an iterable", async (_what, body) => {
    const result = await run(respond("200 OK", [], body as unknown as Body));
    expect(result.text).toBe(ERROR_RESPONSE);
  });
});

describe("status and header validity", () => {
  it.each(["200", "2000 OK", "abc OK", "200 OK\r\nX: y", "200 ОК", "099 Low", "200 \u0000"])(
    "answers 500 for status %j and never emits it [status.format]",
    async (status) => {
      const result = await run(respond(status, [], ["body"]));
      expect(result.text).toBe(ERROR_RESPONSE);
      expect(result.errorLog).toContain("invalid status");
    },
  );

  it.each(["100 Continue", "600 Beyond", "999 Last"])(
    "sends status %j: any three digits from 100 to 999 [status.format]",
    async (status) => {
      const result = await run(respond(status, [], ["x"]));
      expect(result.text).toBe(`Status: ${status}\r\nContent-Length: 1\r\n\r\nx`);
    },
  );

  it("answers 500 for a header value with CR LF and never emits the injected header [header.value]", async () => {
    const result = await run(respond("200 OK", [["Location", "a\r\nInjected: 1"]], ["body"]));
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.text).not.toContain("Injected");
  });

  it.each(["a\nb", "a\rb", "a\u0000b", "a\u007fb"])(
    "answers 500 for a header value containing %j",
    async (value) => {
      const result = await run(respond("200 OK", [["X-Value", value]], ["body"]));
      expect(result.text).toBe(ERROR_RESPONSE);
    },
  );

  it.each(["X Header", "X:Header", "X-Header:", "X\r\nHeader", "X\u0000", "", "Ĥeader", "X(y)"])(
    "answers 500 for header name %j [header.name]",
    async (name) => {
      const result = await run(respond("200 OK", [[name, "value"]], ["body"]));
      expect(result.text).toBe(ERROR_RESPONSE);
      expect(result.errorLog).toContain("invalid header name");
    },
  );

  it.each([
    "Connection",
    "Transfer-Encoding",
    "keep-alive",
    "Upgrade",
    "TE",
    "Trailer",
    "Proxy-Authenticate",
  ])("answers 500 for the hop-by-hop header %s [header.hop-by-hop]", async (name) => {
    const result = await run(respond("200 OK", [[name, "close"]], ["body"]));
    expect(result.text).toBe(ERROR_RESPONSE);
    expect(result.errorLog).toContain("hop-by-hop");
  });

  it("answers 500 for header text outside Latin-1 [header.value]", async () => {
    const result = await run(respond("200 OK", [["X-Greeting", "привет"]], ["body"]));
    expect(result.text).toBe(ERROR_RESPONSE);
  });

  it("sends Latin-1 header text as one byte per character", async () => {
    const result = await run(respond("200 OK", [["X-Name", "café"]], ["x"]));
    expect(result.sink.output().includes(Buffer.from("X-Name: caf\xe9\r\n", "latin1"))).toBe(true);
  });

  it("keeps repeated headers as separate lines, in order", async () => {
    const headers: HeaderList = [
      ["Set-Cookie", "a=1"],
      ["X-Other", "o"],
      ["Set-Cookie", "b=2"],
    ];
    const result = await run(respond("200 OK", headers, []));
    expect(result.text).toBe(
      "Status: 200 OK\r\nSet-Cookie: a=1\r\nX-Other: o\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    );
  });
});

describe("close() and return()", () => {
  it("calls close() exactly once after a complete response", async () => {
    const body = closable(["a", "b"]);
    const result = await run(respond("200 OK", [], body));
    expect(result.outcome).toBe("complete");
    expect(body.closeCalls).toBe(1);
  });

  it("calls close() exactly once when iteration throws [close.once]", async () => {
    const generator = (function* () {
      yield "before";
      throw new Error("mid-iteration");
    })();
    const body = closable(generator);
    const result = await run(respond("200 OK", [], body));
    expect(result.outcome).toBe("cut");
    expect(body.closeCalls).toBe(1);
  });

  it("calls close() exactly once when the body fails before any output", async () => {
    const body = closable([42 as unknown as Chunk]);
    const result = await run(respond("200 OK", [], body));
    expect(result.outcome).toBe("failed");
    expect(body.closeCalls).toBe(1);
  });

  it("calls close() once and runs the generator's finally when the sink reports the client gone [error.abort]", async () => {
    let finallyRan = 0;
    let chunksAfterGone = 0;
    const generator = (function* () {
      try {
        yield "one";
        chunksAfterGone++;
        yield "two";
      } finally {
        finallyRan++;
      }
    })();
    const body = closable(generator);
    const sink = new RecordingSink();
    sink.onWrite = () => {
      throw new ConnectionClosedError("client went away");
    };
    const result = await run(respond("200 OK", [], body), sink);
    expect(result.outcome).toBe("aborted");
    expect(body.closeCalls).toBe(1);
    expect(finallyRan).toBe(1);
    expect(chunksAfterGone).toBe(0);
    expect(sink.count("abort")).toBe(1);
    expect(result.errorLog).toBe(""); // a client leaving is not an application error
  });

  it("stops, calls return() and close() when a pending sink write rejects with ConnectionClosedError", async () => {
    let finallyRan = false;
    const body = closable(
      (async function* () {
        try {
          for (let index = 0; index < 1000; index++) yield "chunk";
        } finally {
          finallyRan = true;
        }
      })(),
    );
    const sink = new RecordingSink();
    sink.onWrite = (_data, index) =>
      index === 2 ? Promise.reject(new ConnectionClosedError("gone")) : undefined;
    const result = await run(respond("200 OK", [], body), sink);
    await settle();
    expect(result.outcome).toBe("aborted");
    expect(sink.count("write")).toBe(3);
    expect(finallyRan).toBe(true);
    expect(body.closeCalls).toBe(1);
  });

  it("stops a sync generator once the sink's signal was aborted during a pending write, running its finally", async () => {
    let finallyRan = false;
    const sink = new RecordingSink(true);
    const firstWrite = deferred();
    sink.onWrite = (_data, index) => (index === 0 ? firstWrite.promise : undefined);
    const body = closable(
      (function* () {
        try {
          for (let index = 0; index < 1000; index++) yield "chunk";
        } finally {
          finallyRan = true;
        }
      })(),
    );
    const outcome = runApplication(respond("200 OK", [], body), testEnviron().environ, sink);
    await settle();
    sink.controller.abort(); // the client leaves while the first chunk waits for the pipe
    firstWrite.resolve();
    expect(await outcome).toBe("aborted");
    expect(sink.count("write")).toBe(1);
    expect(finallyRan).toBe(true);
    expect(body.closeCalls).toBe(1);
  });

  it("returns at once when the signal aborts while an async generator is waiting, and its finally runs once it resumes", async () => {
    const gate = deferred();
    let finallyRan = false;
    let resumedPastGate = false;
    const sink = new RecordingSink(true);
    const body = closable(
      (async function* () {
        try {
          yield "first";
          await gate.promise;
          resumedPastGate = true;
          yield "never sent";
        } finally {
          finallyRan = true;
        }
      })(),
    );
    const outcome = runApplication(respond("200 OK", [], body), testEnviron().environ, sink);
    await settle();
    sink.controller.abort();
    expect(await outcome).toBe("aborted");
    expect(body.closeCalls).toBe(1);
    expect(finallyRan).toBe(false); // still inside `await gate.promise`

    gate.resolve();
    await settle();
    expect(resumedPastGate).toBe(true);
    expect(finallyRan).toBe(true);
    expect(sink.text()).toBe("Status: 200 OK\r\n\r\nfirst");
  });

  it("does not call return() on an iterator that finished normally", async () => {
    let returnCalls = 0;
    const values = ["a", "b"];
    let position = 0;
    const body: Iterable<Chunk> = {
      [Symbol.iterator]: () => ({
        next: () =>
          position < values.length
            ? { done: false, value: values[position++] }
            : { done: true, value: undefined },
        return: () => {
          returnCalls++;
          return { done: true, value: undefined };
        },
      }),
    };
    const result = await run(respond("200 OK", [], body));
    expect(result.text).toBe("Status: 200 OK\r\n\r\nab");
    expect(returnCalls).toBe(0);
  });

  it("logs an error thrown by close() without changing a complete response", async () => {
    const body = Object.assign(["ok"], {
      close: () => {
        throw new Error("close exploded");
      },
    });
    const result = await run(respond("200 OK", [], body));
    expect(result.outcome).toBe("complete");
    expect(result.text).toBe("Status: 200 OK\r\nContent-Length: 2\r\n\r\nok");
    expect(result.errorLog).toContain("close exploded");
  });
});

describe("onCleanUp: when the body's return() and close() have settled", () => {
  it("hands over a promise that settles only once an async close() has, and at once for a sync one", async () => {
    const { environ } = testEnviron();
    let finishClose!: () => void;
    const body = Object.assign(["x"], {
      close: () => new Promise<void>((resolve) => (finishClose = resolve)),
    });
    let settled: Promise<unknown> | undefined;
    const outcome = await runApplication(
      respond("200 OK", [], body),
      environ,
      new RecordingSink(),
      {
        onCleanUp: (promise) => {
          settled = promise;
        },
      },
    );
    expect(outcome).toBe("complete");
    let done = false;
    void settled!.then(() => (done = true));
    await settle();
    expect(done).toBe(false);
    finishClose();
    await settle();
    expect(done).toBe(true);

    let syncSettled: Promise<unknown> | undefined;
    await runApplication(
      respond("200 OK", [], closable(["x"])),
      testEnviron().environ,
      new RecordingSink(),
      {
        onCleanUp: (promise) => {
          syncSettled = promise;
        },
      },
    );
    await expect(syncSettled).resolves.toBeUndefined();
  });

  it("settles, and logs, when an async close() rejects", async () => {
    const { environ, errorLog } = testEnviron();
    const released = deferred();
    const body = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          throw new Error("boom");
        },
      }),
      close: () => released.promise.then(() => Promise.reject(new Error("close failed"))),
    };
    let settled: Promise<unknown> | undefined;
    await runApplication(respond("200 OK", [], body), environ, new RecordingSink(), {
      onCleanUp: (promise) => {
        settled = promise;
      },
    });
    released.resolve();
    await expect(settled).resolves.toBeDefined();
    expect(errorLog()).toMatch(/error in body close\(\): Error: close failed/);
  });
});

describe("backpressure", () => {
  it("does not write to the sink again until its pending write resolves", async () => {
    const pending: ReturnType<typeof deferred>[] = [];
    const sink = new RecordingSink();
    sink.onWrite = () => {
      const next = deferred();
      pending.push(next);
      return next.promise;
    };
    const outcome = runApplication(
      respond("200 OK", [], ["a", "b", "c"]),
      testEnviron().environ,
      sink,
    );

    for (let index = 0; index < 3; index++) {
      await settle();
      expect(sink.count("write")).toBe(index + 1);
      expect(sink.count("end")).toBe(0);
      pending[index].resolve();
    }
    expect(await outcome).toBe("complete");
    expect(sink.text()).toBe("Status: 200 OK\r\n\r\nabc");
  });

  it("does not ask an async body for the next chunk while a write is pending", async () => {
    let pulls = 0;
    const gate = deferred();
    const sink = new RecordingSink();
    sink.onWrite = (_data, index) => (index === 0 ? gate.promise : undefined);
    const body = (async function* () {
      for (let index = 0; index < 3; index++) {
        pulls++;
        yield String(index);
      }
    })();
    const outcome = runApplication(respond("200 OK", [], body), testEnviron().environ, sink);
    await settle();
    expect(pulls).toBe(1);
    gate.resolve();
    expect(await outcome).toBe("complete");
    expect(pulls).toBe(3);
  });

  it("passes the sink's pending write back from write(), so an application can wait for it", async () => {
    const gate = deferred();
    const sink = new RecordingSink();
    sink.onWrite = () => gate.promise;
    let writeSettled = false;
    const outcome = runApplication(
      (_environ, startResponse) => {
        const pending = startResponse("200 OK", [])("x");
        expect(pending).toBeInstanceOf(Promise);
        void (pending as Promise<void>).then(() => (writeSettled = true));
        return [];
      },
      testEnviron().environ,
      sink,
    );
    await settle();
    expect(writeSettled).toBe(false);
    gate.resolve();
    expect(await outcome).toBe("complete");
    expect(writeSettled).toBe(true);
  });
});
