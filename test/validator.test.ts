// The validator: every rule is caught and blames the right side, and valid
// applications under a well-behaved gateway (the shared engine) pass untouched.

import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it, vi } from "vitest";
import { runWithCgi } from "../src/cgi/gateway.js";
import { runApplication, type Outcome, type ResponseSink } from "../src/engine.js";
import { makeEnviron } from "../src/environ.js";
import type { Application, Chunk, Environ, HeaderList, StartResponse } from "../src/types.js";
import { ValidationError, validator, type Side } from "../src/validator.js";

class MemoryErrors extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

class MemorySink implements ResponseSink {
  status: string | undefined;
  headers: HeaderList = [];
  chunks: Buffer[] = [];
  ended = false;
  constructor(readonly signal?: AbortSignal) {}
  sendHeaders(status: string, headers: HeaderList): void {
    this.status = status;
    this.headers = headers;
  }
  write(data: Uint8Array): void {
    this.chunks.push(Buffer.from(data));
  }
  end(): void {
    this.ended = true;
  }
  abort(): void {}
  get body(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

/** A valid environ, as a gateway builds it, for a request with this body. */
function request(vars: Record<string, string> = {}, input: Readable = Readable.from([])): Environ {
  return makeEnviron(
    {
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: "",
      PATH_INFO: "/",
      QUERY_STRING: "",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SERVER_PROTOCOL: "HTTP/1.1",
      ...vars,
    },
    { input, errors: new MemoryErrors(), multithread: false, multiprocess: false, runOnce: false },
  );
}

function errorsText(environ: Environ): string {
  return (environ["tsgi.errors"] as MemoryErrors).text;
}

const ignoreWrite = () => {};
const acceptingStart: StartResponse = () => ignoreWrite;

const hello: Application = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

type ClosableBody = Iterable<Chunk> & { close(): unknown };
type ClosableAsyncBody = AsyncIterable<Chunk> & { close(): unknown };

function caught(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected a violation, but nothing was thrown");
}

function expectViolation(error: unknown, side: Side, rule: string): void {
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).side).toBe(side);
  expect((error as ValidationError).message).toContain(`[${side}] ${rule}`);
}

async function serve(app: Application, environ = request(), signal?: AbortSignal): Promise<{ outcome: Outcome; sink: MemorySink }> {
  const sink = new MemorySink(signal);
  const outcome = await runApplication(app, environ, sink);
  return { outcome, sink };
}

describe("ValidationError", () => {
  it("names the side at fault first, then the rule", () => {
    const error = new ValidationError("gateway", "environ.PATH_INFO must be a string");
    expect(error.message).toBe("[gateway] environ.PATH_INFO must be a string");
    expect(error.side).toBe("gateway");
    expect(String(error)).toBe("ValidationError: [gateway] environ.PATH_INFO must be a string");
  });
});

describe("the gateway's environ", () => {
  function environViolation(change: (environ: Record<string, unknown>) => void): unknown {
    const environ = request();
    change(environ as unknown as Record<string, unknown>);
    return caught(() => validator(hello)(environ, acceptingStart));
  }

  it("must be an object", () => {
    expectViolation(
      caught(() => validator(hello)(null as unknown as Environ, acceptingStart)),
      "gateway",
      "environ must be an object, not null",
    );
  });

  it.each(["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"])(
    "must have %s as a string",
    (key) => {
      expectViolation(environViolation((env) => delete env[key]), "gateway", `environ.${key} must be a string, not undefined`);
      expectViolation(environViolation((env) => (env[key] = 80)), "gateway", `environ.${key} must be a string, not a number`);
    },
  );

  it("must hold strings in every CGI and HTTP_ variable (undefined counts as absent)", () => {
    expectViolation(environViolation((env) => (env.HTTP_X_COUNT = 3)), "gateway", "environ.HTTP_X_COUNT must be a string");
    expect(() => validator(hello)(Object.assign(request(), { HTTP_ACCEPT: undefined }), acceptingStart)).not.toThrow();
    expect(() => validator(hello)(Object.assign(request(), { "x.extension": 3 }), acceptingStart)).not.toThrow();
  });

  it("must hold Latin-1 strings only", () => {
    expect(() => validator(hello)(request({ PATH_INFO: "/caf\u00e9\u00ff" }), acceptingStart)).not.toThrow();
    expectViolation(
      environViolation((env) => (env.PATH_INFO = "/\u20ac")),
      "gateway",
      "environ.PATH_INFO must be Latin-1 (one code point per byte), but holds U+20AC",
    );
    expectViolation(environViolation((env) => (env.HTTP_X = "\u{1F600}")), "gateway", "environ.HTTP_X must be Latin-1");
  });

  it("must not have an empty REQUEST_METHOD", () => {
    expectViolation(environViolation((env) => (env.REQUEST_METHOD = "")), "gateway", "environ.REQUEST_METHOD must not be empty");
  });

  it("must have a decimal CONTENT_LENGTH when it has a non-empty one", () => {
    for (const value of ["abc", "-1", "1.5", " 3"]) {
      expectViolation(environViolation((env) => (env.CONTENT_LENGTH = value)), "gateway", "environ.CONTENT_LENGTH must be a decimal number");
    }
    for (const value of ["", "0", "12"]) {
      expect(() => validator(hello)(request({ CONTENT_LENGTH: value }), acceptingStart)).not.toThrow();
    }
  });

  it.each(["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"])("must not have %s", (key) => {
    expectViolation(environViolation((env) => (env[key] = "5")), "gateway", `environ.${key} must be absent`);
  });

  it('must have a SCRIPT_NAME that is empty or starts with "/", and is not "/"', () => {
    expectViolation(environViolation((env) => (env.SCRIPT_NAME = "/")), "gateway", 'environ.SCRIPT_NAME must not be "/"');
    expectViolation(environViolation((env) => (env.SCRIPT_NAME = "app")), "gateway", 'environ.SCRIPT_NAME must be empty or start with "/"');
    expect(() => validator(hello)(request({ SCRIPT_NAME: "/app" }), acceptingStart)).not.toThrow();
  });

  it('must have a PATH_INFO that is empty or starts with "/"', () => {
    expectViolation(environViolation((env) => (env.PATH_INFO = "x")), "gateway", 'environ.PATH_INFO must be empty or start with "/"');
    expect(() => validator(hello)(request({ PATH_INFO: "" }), acceptingStart)).not.toThrow();
  });

  it("must have tsgi.version [1, 0]", () => {
    expectViolation(environViolation((env) => (env["tsgi.version"] = [1, 1])), "gateway", 'environ["tsgi.version"] must be [1, 0], not [1,1]');
    expectViolation(environViolation((env) => (env["tsgi.version"] = "1.0")), "gateway", 'environ["tsgi.version"] must be [1, 0]');
  });

  it('must have tsgi.url_scheme "http" or "https"', () => {
    expectViolation(environViolation((env) => (env["tsgi.url_scheme"] = "ftp")), "gateway", 'environ["tsgi.url_scheme"] must be "http" or "https"');
    expect(() => validator(hello)(Object.assign(request(), { "tsgi.url_scheme": "https" }), acceptingStart)).not.toThrow();
  });

  it("must have an async-iterable Readable as tsgi.input", () => {
    expectViolation(
      environViolation((env) => (env["tsgi.input"] = Buffer.from("body"))),
      "gateway",
      'environ["tsgi.input"] must be an async-iterable Readable',
    );
  });

  it("must have a Writable as tsgi.errors", () => {
    expectViolation(environViolation((env) => (env["tsgi.errors"] = console)), "gateway", 'environ["tsgi.errors"] must be a Writable');
  });

  it.each(["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"])("must have a boolean %s", (key) => {
    expectViolation(environViolation((env) => (env[key] = 0)), "gateway", `environ["${key}"] must be a boolean, not a number`);
  });

  it("is copied for the application, so the gateway's own environ keeps its streams", () => {
    const environ = request();
    const input = environ["tsgi.input"];
    let seen: Environ | undefined;
    validator((inner, startResponse) => {
      seen = inner;
      return hello(inner, startResponse);
    })(environ, acceptingStart);
    expect(seen).not.toBe(environ);
    expect(seen?.PATH_INFO).toBe("/");
    expect(environ["tsgi.input"]).toBe(input);
    expect(seen?.["tsgi.input"]).not.toBe(input);
  });
});

describe("the gateway's startResponse", () => {
  it("must be a function", () => {
    expectViolation(
      caught(() => validator(hello)(request(), undefined as unknown as StartResponse)),
      "gateway",
      "startResponse must be a function",
    );
  });

  it("must return a write function", () => {
    const returnsNothing = (() => undefined) as unknown as StartResponse;
    expectViolation(caught(() => validator(hello)(request(), returnsNothing)), "gateway", "startResponse() must return a write function");
  });
});

describe("tsgi.input", () => {
  const readAll: Application = async (environ, startResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of environ["tsgi.input"]) chunks.push(Buffer.from(chunk));
    startResponse("200 OK", []);
    return [Buffer.concat(chunks)];
  };

  it("passes the body through when it has CONTENT_LENGTH bytes", async () => {
    const environ = request({ REQUEST_METHOD: "POST", CONTENT_LENGTH: "6" }, Readable.from([Buffer.from("abc"), Buffer.from("def")]));
    const body = (await validator(readAll)(environ, acceptingStart)) as Chunk[];
    expect(Buffer.from(body[0] as Uint8Array).toString()).toBe("abcdef");
  });

  it("must not yield more bytes than CONTENT_LENGTH", async () => {
    const environ = request({ REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" }, Readable.from([Buffer.from("abc"), Buffer.from("def")]));
    const error = await Promise.resolve(validator(readAll)(environ, acceptingStart)).catch((e: unknown) => e);
    expectViolation(error, "gateway", "tsgi.input yielded 6 bytes, more than CONTENT_LENGTH (3)");
  });

  it("must yield Uint8Array chunks", async () => {
    const environ = request({ REQUEST_METHOD: "POST" }, Readable.from(["text"]));
    const error = await Promise.resolve(validator(readAll)(environ, acceptingStart)).catch((e: unknown) => e);
    expectViolation(error, "gateway", "tsgi.input yielded a string; its chunks must be Uint8Arrays");
  });

  it("is not read from the gateway until the application reads it", () => {
    const read = vi.fn();
    validator(hello)(request({}, new Readable({ read })), acceptingStart);
    expect(read).not.toHaveBeenCalled();
  });
});

describe("tsgi.errors", () => {
  it("passes strings and bytes to the gateway's stream at once", () => {
    const environ = request();
    validator((inner, startResponse) => {
      inner["tsgi.errors"].write("text, ");
      inner["tsgi.errors"].write(Buffer.from("bytes"));
      return hello(inner, startResponse);
    })(environ, acceptingStart);
    expect(errorsText(environ)).toBe("text, bytes");
  });

  it("takes only strings and Uint8Arrays from the application", () => {
    const app: Application = (environ) => {
      environ["tsgi.errors"].write(42 as unknown as string);
      return [];
    };
    expectViolation(caught(() => validator(app)(request(), acceptingStart)), "app", "tsgi.errors.write() was given a number");
  });

  it("must not be ended by the application", () => {
    const app: Application = (environ) => {
      environ["tsgi.errors"].end();
      return [];
    };
    expectViolation(caught(() => validator(app)(request(), acceptingStart)), "app", "tsgi.errors must not be ended");
  });
});

describe("the application's status and headers", () => {
  function startWith(status: unknown, headers: unknown): unknown {
    const app: Application = (_environ, startResponse) => {
      startResponse(status as string, headers as HeaderList);
      return [];
    };
    return caught(() => validator(app)(request(), acceptingStart));
  }

  it.each(["200", "2000 OK", "abc OK", "200 OK\r\nX: y", 200])('rejects the status %j: it must be "NNN Reason"', (status) => {
    expectViolation(startWith(status, []), "app", `status ${JSON.stringify(status)} must be "NNN Reason"`);
  });

  it.each([
    ["not an array", "nope", "headers must be an array"],
    ["not a pair", [["X-One"]], 'header ["X-One"] is not a [name, value] pair'],
    ["a name that is not a token", [["Bad Name", "v"]], 'invalid header name "Bad Name"'],
    ["a CR LF in a value", [["Location", "/a\r\nInjected: 1"]], "invalid value for header Location"],
    ["a value that is not a string", [["X-Count", 5]], "invalid value for header X-Count"],
  ])("rejects headers with %s", (_what, headers, rule) => {
    expectViolation(startWith("200 OK", headers), "app", rule);
  });

  it.each(["Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "TE", "Trailer", "Proxy-Authenticate", "Proxy-Authorization"])(
    "rejects the hop-by-hop header %s",
    (name) => {
      expectViolation(startWith("200 OK", [[name, "x"]]), "app", `hop-by-hop header ${name} may only be set by the gateway`);
    },
  );

  it.each(["100 Continue", "103 Early Hints", "204 No Content", "304 Not Modified"])(
    "rejects Content-Type and Content-Length on %s",
    (status) => {
      const rule = `a ${status.slice(0, 3)} response has no body, so it must not have a`;
      expectViolation(startWith(status, [["Content-Type", "text/plain"]]), "app", `${rule} Content-Type header`);
      expectViolation(startWith(status, [["content-length", "0"]]), "app", `${rule} content-length header`);
    },
  );

  it("allows Content-Type and Content-Length on a 200", () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", [
        ["Content-Type", "text/plain"],
        ["Content-Length", "2"],
      ]);
      return ["ok"];
    };
    expect(() => validator(app)(request(), acceptingStart)).not.toThrow();
  });

  it("rejects a Content-Length that is not a decimal number", () => {
    expectViolation(startWith("200 OK", [["Content-Length", "12abc"]]), "app", 'header Content-Length must be a decimal number, not "12abc"');
  });

  it("rejects a second startResponse() without excInfo", () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", []);
      startResponse("404 Not Found", []);
      return [];
    };
    expectViolation(caught(() => validator(app)(request(), acceptingStart)), "app", "startResponse() was called a second time without excInfo");
  });

  it("passes a second startResponse() with excInfo on to the gateway", () => {
    const gatewayStart = vi.fn(acceptingStart);
    const failure = new Error("boom");
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", []);
      startResponse("500 Internal Server Error", [], failure);
      return [];
    };
    validator(app)(request(), gatewayStart);
    expect(gatewayStart).toHaveBeenCalledTimes(2);
    expect(gatewayStart).toHaveBeenLastCalledWith("500 Internal Server Error", [], failure);
  });
});

describe("the application's body", () => {
  it.each([
    ["a string", "hello"],
    ["a Uint8Array", new Uint8Array([1])],
    ["null", null],
    ["a number", 42],
    ["a plain object", {}],
  ])("must be an iterable, not %s", (_what, body) => {
    const app = ((_environ: Environ, startResponse: StartResponse) => {
      startResponse("200 OK", []);
      return body;
    }) as unknown as Application;
    expectViolation(caught(() => validator(app)(request(), acceptingStart)), "app", "the application returned");
  });

  it("is checked when the application returns a promise", async () => {
    const app = (async (_environ: Environ, startResponse: StartResponse) => {
      startResponse("200 OK", []);
      return "hello";
    }) as unknown as Application;
    const error = await Promise.resolve(validator(app)(request(), acceptingStart)).catch((e: unknown) => e);
    expectViolation(error, "app", "the application returned a string; the body must be an iterable of chunks, not a single chunk");
  });

  it("must not yield a chunk before startResponse() was called", () => {
    const body = validator(() => ["early"])(request(), acceptingStart) as ClosableBody;
    expectViolation(caught(() => [...body]), "app", "the body yielded a chunk before startResponse() was called");
  });

  it("must not end before startResponse() was called", () => {
    const body = validator(() => [])(request(), acceptingStart) as ClosableBody;
    expectViolation(caught(() => [...body]), "app", "the body ended before startResponse() was called");
  });

  it("may call startResponse() lazily, inside a generator's first step", () => {
    const app: Application = function* (_environ, startResponse) {
      startResponse("200 OK", []);
      yield "lazy";
    };
    const body = validator(app)(request(), acceptingStart) as ClosableBody;
    expect([...body]).toEqual(["lazy"]);
  });

  it("must yield only Uint8Arrays and strings", async () => {
    const syncApp = ((_environ: Environ, startResponse: StartResponse) => {
      startResponse("200 OK", []);
      return ["ok", 5];
    }) as unknown as Application;
    const syncBody = validator(syncApp)(request(), acceptingStart) as ClosableBody;
    expectViolation(caught(() => [...syncBody]), "app", "the body yielded a number; a chunk must be a Uint8Array or a string");

    const asyncApp = async function* (_environ: Environ, startResponse: StartResponse) {
      startResponse("200 OK", []);
      yield { text: "no" };
    } as unknown as Application;
    const asyncBody = validator(asyncApp)(request(), acceptingStart) as ClosableAsyncBody;
    const error = await asyncBody[Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => e);
    expectViolation(error, "app", "the body yielded an object (Object)");
  });

  it("stops the app's generator when it yields a bad chunk, so its finally runs", () => {
    const cleanedUp = vi.fn();
    const app = function* (_environ: Environ, startResponse: StartResponse) {
      startResponse("200 OK", []);
      try {
        yield 5;
        yield "never reached";
      } finally {
        cleanedUp();
      }
    } as unknown as Application;
    const body = validator(app)(request(), acceptingStart) as ClosableBody;
    caught(() => [...body]);
    expect(cleanedUp).toHaveBeenCalledOnce();
    expect(() => body.close()).not.toThrow();
  });

  it("must give write() only Uint8Arrays and strings", () => {
    const app: Application = (_environ, startResponse) => {
      const write = startResponse("200 OK", []);
      void write(null as unknown as string);
      return [];
    };
    expectViolation(caught(() => validator(app)(request(), acceptingStart)), "app", "write() was given null");
  });

  it("must not use write() after the body was closed", () => {
    let write: ((chunk: Chunk) => unknown) | undefined;
    const app: Application = (_environ, startResponse) => {
      write = startResponse("200 OK", []);
      return [];
    };
    const body = validator(app)(request(), acceptingStart) as ClosableBody;
    void write?.("before close");
    [...body];
    body.close();
    expectViolation(caught(() => write?.("late")), "app", "write() was called after the body was closed");
  });
});

describe("the gateway's handling of the body", () => {
  function helloBody(): { validated: ReturnType<typeof validator>; body: ClosableBody } {
    const validated = validator(hello);
    return { validated, body: validated(request(), acceptingStart) as ClosableBody };
  }

  it("always finds a close() on the body, and it calls the app's close()", () => {
    const appClose = vi.fn();
    const body = validator((_environ, startResponse) => {
      startResponse("200 OK", []);
      return Object.assign(["x"], { close: appClose });
    })(request(), acceptingStart) as ClosableBody;
    expect([...body]).toEqual(["x"]);
    body.close();
    expect(appClose).toHaveBeenCalledOnce();
    expect(typeof (helloBody().body.close)).toBe("function");
  });

  it("must not call close() twice", () => {
    const { body } = helloBody();
    [...body];
    body.close();
    expectViolation(caught(() => body.close()), "gateway", "close() was called on the body a second time");
  });

  it("must call close(): assertNoViolations() reports a body that was never closed", () => {
    const { validated, body } = helloBody();
    [...body];
    expectViolation(caught(() => validated.assertNoViolations()), "gateway", "close() was never called on the body of GET /");
  });

  it("passes assertNoViolations() once the body was iterated and closed", () => {
    const { validated, body } = helloBody();
    [...body];
    body.close();
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("must not iterate the body twice", () => {
    const { body } = helloBody();
    [...body];
    expectViolation(caught(() => [...body]), "gateway", "the body was iterated a second time");
  });

  it("must not iterate the body after close()", () => {
    const { body } = helloBody();
    body.close();
    expectViolation(caught(() => [...body]), "gateway", "the body was iterated after close()");
  });

  it("must not call next() after close()", () => {
    const { body } = helloBody();
    const iterator = body[Symbol.iterator]();
    while (!iterator.next().done);
    body.close();
    expectViolation(caught(() => iterator.next()), "gateway", "next() was called on the body's iterator after close()");
  });

  it("must call return() when it stops iterating early, yet the app's close() still runs", () => {
    const appClose = vi.fn();
    const body = validator((_environ, startResponse) => {
      startResponse("200 OK", []);
      return Object.assign(["one", "two"], { close: appClose });
    })(request(), acceptingStart) as ClosableBody;
    body[Symbol.iterator]().next();
    expectViolation(
      caught(() => body.close()),
      "gateway",
      "the gateway stopped iterating the body without running it to the end or calling return()",
    );
    expect(appClose).toHaveBeenCalledOnce();
  });

  it("passes return() on to the app's iterator, so a generator's finally runs", () => {
    const cleanedUp = vi.fn();
    const app: Application = function* (_environ, startResponse) {
      startResponse("200 OK", []);
      try {
        yield "one";
        yield "two";
      } finally {
        cleanedUp();
      }
    };
    const body = validator(app)(request(), acceptingStart) as ClosableBody;
    const iterator = body[Symbol.iterator]();
    iterator.next();
    iterator.return?.();
    expect(cleanedUp).toHaveBeenCalledOnce();
    expect(() => body.close()).not.toThrow();
  });

  it("warns when a body dropped without close() is garbage-collected", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const validated = validator(hello);
      (() => {
        const body = validated(request({ PATH_INFO: "/dropped" }), acceptingStart) as ClosableBody;
        [...body];
      })();
      for (let attempt = 0; attempt < 50 && warnings.length === 0; attempt++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(warnings).toHaveLength(1);
      expectViolation(warnings[0], "gateway", "close() was never called on the body of GET /dropped");
      expectViolation(caught(() => validated.assertNoViolations()), "gateway", "close() was never called on the body of GET /dropped");
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("under the shared engine (a well-behaved gateway)", () => {
  const valid: [string, Application, string][] = [
    ["a one-chunk array", hello, "hello"],
    [
      "a generator that starts the response lazily",
      function* (_environ, startResponse) {
        startResponse("200 OK", [["Content-Type", "text/plain"]]);
        yield "a";
        yield Buffer.from("b");
      },
      "ab",
    ],
    [
      "an async generator",
      async function* (_environ, startResponse) {
        startResponse("200 OK", []);
        yield "a";
        await Promise.resolve();
        yield "b";
      },
      "ab",
    ],
    [
      "write() and an empty body",
      (_environ, startResponse) => {
        const write = startResponse("200 OK", []);
        void write("written");
        return [];
      },
      "written",
    ],
    [
      "an async app that reads the request body",
      async (environ, startResponse) => {
        const chunks: Buffer[] = [];
        for await (const chunk of environ["tsgi.input"]) chunks.push(Buffer.from(chunk));
        startResponse("200 OK", []);
        return [`got ${Buffer.concat(chunks).toString()}`];
      },
      "got ",
    ],
    [
      "a 204 without a body",
      (_environ, startResponse) => {
        startResponse("204 No Content", []);
        return [];
      },
      "",
    ],
  ];

  it.each(valid)("passes %s", async (_what, app, expectedBody) => {
    const validated = validator(app);
    const { outcome, sink } = await serve(validated);
    expect(outcome).toBe("complete");
    expect(sink.body).toBe(expectedBody);
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("passes a POST body of CONTENT_LENGTH bytes", async () => {
    const echo = valid[4]![1];
    const validated = validator(echo);
    const environ = request({ REQUEST_METHOD: "POST", CONTENT_LENGTH: "4" }, Readable.from([Buffer.from("ping")]));
    const { outcome, sink } = await serve(validated, environ);
    expect(outcome).toBe("complete");
    expect(sink.body).toBe("got ping");
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("keeps an array body an array, so the engine still adds Content-Length to a single chunk", async () => {
    const { sink } = await serve(validator(hello));
    expect(sink.headers).toContainEqual(["Content-Length", "5"]);
  });

  it("calls the app's close() exactly once", async () => {
    const appClose = vi.fn();
    const validated = validator((_environ, startResponse) => {
      startResponse("200 OK", []);
      return Object.assign(["x"], { close: appClose });
    });
    await serve(validated);
    expect(appClose).toHaveBeenCalledOnce();
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("passes a request the client aborts mid-body: the engine returns the iterator and closes the body", async () => {
    const controller = new AbortController();
    const cleanedUp = vi.fn();
    const validated = validator(async function* (_environ, startResponse) {
      startResponse("200 OK", []);
      try {
        yield "first";
        controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield "second";
      } finally {
        cleanedUp();
      }
    });
    const { outcome } = await serve(validated, request(), controller.signal);
    expect(outcome).toBe("aborted");
    await vi.waitFor(() => expect(cleanedUp).toHaveBeenCalledOnce());
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("records a violation the engine turned into a 500, for assertNoViolations() to throw once", async () => {
    const validated = validator((_environ, startResponse) => {
      startResponse("200", []);
      return [];
    });
    const environ = request();
    const { outcome, sink } = await serve(validated, environ);
    expect(outcome).toBe("failed");
    expect(sink.status).toBe("500 Internal Server Error");
    expect(errorsText(environ)).toContain('ValidationError: [app] status "200" must be "NNN Reason"');
    expectViolation(caught(() => validated.assertNoViolations()), "app", 'status "200" must be "NNN Reason"');
    expect(() => validated.assertNoViolations()).not.toThrow();
  });
});

describe("under the CGI gateway", () => {
  it("passes a POST whose stdin holds more than CONTENT_LENGTH bytes: the gateway stops at CONTENT_LENGTH", async () => {
    const directory = mkdtempSync(join(tmpdir(), "tsgi-validator-"));
    writeFileSync(join(directory, "stdin"), "pingEXTRA");
    const stdinFd = openSync(join(directory, "stdin"), "r");
    const stdoutFd = openSync(join(directory, "stdout"), "w");
    const errors = new MemoryErrors();
    const validated = validator(async (environ, startResponse) => {
      const chunks: Buffer[] = [];
      for await (const chunk of environ["tsgi.input"]) chunks.push(Buffer.from(chunk));
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return [`got ${Buffer.concat(chunks).toString()}`];
    });
    try {
      const exitCode = await runWithCgi(validated, {
        environ: {
          REQUEST_METHOD: "POST",
          SCRIPT_NAME: "/app.cgi",
          PATH_INFO: "/echo",
          QUERY_STRING: "",
          CONTENT_LENGTH: "4",
          SERVER_NAME: "localhost",
          SERVER_PORT: "80",
          SERVER_PROTOCOL: "HTTP/1.1",
        },
        stdinFd,
        stdoutFd,
        errors,
        exit: false,
      });
      expect(errors.text).toBe("");
      expect(exitCode).toBe(0);
    } finally {
      closeSync(stdinFd);
      closeSync(stdoutFd);
    }
    expect(readFileSync(join(directory, "stdout"), "latin1")).toMatch(/^Status: 200 OK\r\n[^]*\r\n\r\ngot ping$/);
    expect(() => validated.assertNoViolations()).not.toThrow();
  });
});
