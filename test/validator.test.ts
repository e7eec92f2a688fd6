// The validator: every rule is caught and blames the right side, and valid
// applications under a well-behaved gateway (the shared engine) pass untouched.

import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runWithCgi } from "../src/cgi/gateway.js";
import { runApplication, type Outcome } from "../src/engine.js";
import { serveFastCgi, type FastCgiServer } from "../src/fastcgi/server.js";
import type { Application, Chunk, Environ, HeaderList, StartResponse } from "../src/types.js";
import { ValidationError, validator, type Side } from "../src/validator/index.js";
import { paramsFor, trackClients } from "./helpers/fastcgi-client.js";
import { testEnviron } from "./helpers/engine-harness.js";
import { RecordingSink, TextCollector } from "./helpers/sinks.js";

/** A valid environ, as a gateway builds it, for a request with this body. */
function request(vars: Record<string, string> = {}, input?: Readable): Environ {
  return testEnviron(vars, input).environ;
}

function errorsText(environ: Environ): string {
  return (environ["tsgi.errors"] as TextCollector).text;
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

/** A ValidationError blaming `side`, naming the rule `id` of docs/SPEC.md, whose message starts with `detail`. */
function expectViolation(error: unknown, side: Side, id: string, detail: string): void {
  expect(error).toBeInstanceOf(ValidationError);
  const violation = error as ValidationError;
  expect(violation.side).toBe(side);
  expect(violation.rule).toBe(id);
  expect(violation.message).toContain(`[${side}] ${detail}`);
  expect(violation.message.endsWith(` [${id}]`)).toBe(true);
}

async function serve(
  app: Application,
  environ = request(),
  signal?: AbortSignal,
): Promise<{ outcome: Outcome; sink: RecordingSink }> {
  const sink = new RecordingSink(signal ?? false);
  const outcome = await runApplication(app, environ, sink);
  return { outcome, sink };
}

describe("ValidationError", () => {
  it("names the side at fault first and the rule's id in docs/SPEC.md last", () => {
    const error = new ValidationError(
      "gateway",
      "env.path-info",
      "environ.PATH_INFO must be a string",
    );
    expect(error.message).toBe("[gateway] environ.PATH_INFO must be a string [env.path-info]");
    expect(error.side).toBe("gateway");
    expect(error.rule).toBe("env.path-info");
    expect(String(error)).toBe(
      "ValidationError: [gateway] environ.PATH_INFO must be a string [env.path-info]",
    );
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
      "env.object",
      "environ must be an object, not null",
    );
  });

  it.each([
    ["REQUEST_METHOD", "env.method"],
    ["SCRIPT_NAME", "env.script-name"],
    ["PATH_INFO", "env.path-info"],
    ["QUERY_STRING", "env.query-string"],
    ["SERVER_NAME", "env.server"],
    ["SERVER_PORT", "env.server"],
    ["SERVER_PROTOCOL", "env.server"],
  ])("must have %s as a string", (key, id) => {
    expectViolation(
      environViolation((env) => delete env[key]),
      "gateway",
      id,
      `environ.${key} must be a string, not undefined`,
    );
    expectViolation(
      environViolation((env) => (env[key] = 80)),
      "gateway",
      id,
      `environ.${key} must be a string, not a number`,
    );
  });

  it("must hold strings in every CGI and HTTP_ variable (undefined counts as absent)", () => {
    expectViolation(
      environViolation((env) => (env.HTTP_X_COUNT = 3)),
      "gateway",
      "env.strings",
      "environ.HTTP_X_COUNT must be a string",
    );
    expect(() =>
      validator(hello)(Object.assign(request(), { HTTP_ACCEPT: undefined }), acceptingStart),
    ).not.toThrow();
    expect(() =>
      validator(hello)(Object.assign(request(), { "x.extension": 3 }), acceptingStart),
    ).not.toThrow();
  });

  it("must hold Latin-1 strings only", () => {
    expect(() =>
      validator(hello)(request({ PATH_INFO: "/caf\u00e9\u00ff" }), acceptingStart),
    ).not.toThrow();
    expectViolation(
      environViolation((env) => (env.PATH_INFO = "/\u20ac")),
      "gateway",
      "env.latin1",
      "environ.PATH_INFO must be Latin-1 (one code point per byte), but holds U+20AC",
    );
    expectViolation(
      environViolation((env) => (env.HTTP_X = "\u{1F600}")),
      "gateway",
      "env.latin1",
      "environ.HTTP_X must be Latin-1",
    );
    expectViolation(
      environViolation((env) => (env["HTTP_CAF\u20ac"] = "x")),
      "gateway",
      "env.latin1",
      'the environ key "HTTP_CAF\u20ac" must be Latin-1, but holds U+20AC',
    );
  });

  it("must not have an empty REQUEST_METHOD", () => {
    expectViolation(
      environViolation((env) => (env.REQUEST_METHOD = "")),
      "gateway",
      "env.method",
      "environ.REQUEST_METHOD must not be empty",
    );
  });

  it("must have a decimal CONTENT_LENGTH when it has a non-empty one", () => {
    for (const value of ["abc", "-1", "1.5", " 3"]) {
      expectViolation(
        environViolation((env) => (env.CONTENT_LENGTH = value)),
        "gateway",
        "env.content-length",
        "environ.CONTENT_LENGTH must be a decimal number",
      );
    }
    for (const value of ["", "0", "12"]) {
      expect(() =>
        validator(hello)(request({ CONTENT_LENGTH: value }), acceptingStart),
      ).not.toThrow();
    }
  });

  it("may have HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH, as nginx passes every request header", () => {
    const environ = request({
      REQUEST_METHOD: "POST",
      CONTENT_TYPE: "text/plain",
      CONTENT_LENGTH: "4",
      HTTP_CONTENT_TYPE: "text/plain",
      HTTP_CONTENT_LENGTH: "4",
    });
    expect(() => validator(hello)(environ, acceptingStart)).not.toThrow();
    expectViolation(
      environViolation((env) => (env.HTTP_CONTENT_TYPE = "\u20ac")),
      "gateway",
      "env.latin1",
      "environ.HTTP_CONTENT_TYPE must be Latin-1",
    );
  });

  it('must have a SCRIPT_NAME that is empty or starts with "/", and is not "/"', () => {
    expectViolation(
      environViolation((env) => (env.SCRIPT_NAME = "/")),
      "gateway",
      "env.script-name",
      'environ.SCRIPT_NAME must not be "/"',
    );
    expectViolation(
      environViolation((env) => (env.SCRIPT_NAME = "app")),
      "gateway",
      "env.script-name",
      'environ.SCRIPT_NAME must be empty or start with "/"',
    );
    expect(() => validator(hello)(request({ SCRIPT_NAME: "/app" }), acceptingStart)).not.toThrow();
  });

  it('must have a PATH_INFO that is empty or starts with "/"', () => {
    expectViolation(
      environViolation((env) => (env.PATH_INFO = "x")),
      "gateway",
      "env.path-info",
      'environ.PATH_INFO must be empty or start with "/"',
    );
    expect(() => validator(hello)(request({ PATH_INFO: "" }), acceptingStart)).not.toThrow();
  });

  it("must have tsgi.version [1, 0]", () => {
    expectViolation(
      environViolation((env) => (env["tsgi.version"] = [1, 1])),
      "gateway",
      "env.version",
      'environ["tsgi.version"] must be [1, 0], not [1,1]',
    );
    expectViolation(
      environViolation((env) => (env["tsgi.version"] = "1.0")),
      "gateway",
      "env.version",
      'environ["tsgi.version"] must be [1, 0]',
    );
  });

  it('must have tsgi.url_scheme "http" or "https"', () => {
    expectViolation(
      environViolation((env) => (env["tsgi.url_scheme"] = "ftp")),
      "gateway",
      "env.url-scheme",
      'environ["tsgi.url_scheme"] must be "http" or "https"',
    );
    expect(() =>
      validator(hello)(Object.assign(request(), { "tsgi.url_scheme": "https" }), acceptingStart),
    ).not.toThrow();
  });

  it("must have an async-iterable Readable as tsgi.input", () => {
    expectViolation(
      environViolation((env) => (env["tsgi.input"] = Buffer.from("body"))),
      "gateway",
      "env.input",
      'environ["tsgi.input"] must be an async-iterable Readable',
    );
  });

  it("must have a Writable as tsgi.errors", () => {
    expectViolation(
      environViolation((env) => (env["tsgi.errors"] = console)),
      "gateway",
      "env.errors",
      'environ["tsgi.errors"] must be a Writable',
    );
  });

  it.each(["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"])(
    "must have a boolean %s",
    (key) => {
      expectViolation(
        environViolation((env) => (env[key] = 0)),
        "gateway",
        "env.flags",
        `environ["${key}"] must be a boolean, not a number`,
      );
    },
  );

  it("is copied for the application, so the gateway's own environ keeps its streams", () => {
    const environ = request();
    const input = environ["tsgi.input"];
    let seen: Environ | undefined;
    void validator((inner, startResponse) => {
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
      "app.call",
      "startResponse must be a function",
    );
  });

  it("must return a write function", () => {
    const returnsNothing = (() => undefined) as unknown as StartResponse;
    expectViolation(
      caught(() => validator(hello)(request(), returnsNothing)),
      "gateway",
      "write.returned",
      "startResponse() must return a write function",
    );
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
    const environ = request(
      { REQUEST_METHOD: "POST", CONTENT_LENGTH: "6" },
      Readable.from([Buffer.from("abc"), Buffer.from("def")]),
    );
    const body = (await validator(readAll)(environ, acceptingStart)) as Chunk[];
    expect(Buffer.from(body[0] as Uint8Array).toString()).toBe("abcdef");
  });

  it("must not yield more bytes than CONTENT_LENGTH", async () => {
    const environ = request(
      { REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" },
      Readable.from([Buffer.from("abc"), Buffer.from("def")]),
    );
    const error = await Promise.resolve(validator(readAll)(environ, acceptingStart)).catch(
      (e: unknown) => e,
    );
    expectViolation(
      error,
      "gateway",
      "env.input",
      "tsgi.input yielded 6 bytes, more than CONTENT_LENGTH (3)",
    );
  });

  it("must yield Uint8Array chunks", async () => {
    const environ = request({ REQUEST_METHOD: "POST" }, Readable.from(["text"]));
    const error = await Promise.resolve(validator(readAll)(environ, acceptingStart)).catch(
      (e: unknown) => e,
    );
    expectViolation(
      error,
      "gateway",
      "env.input",
      "tsgi.input yielded a string; its chunks must be Uint8Arrays",
    );
  });

  it("is not read from the gateway until the application reads it", () => {
    const read = vi.fn();
    void validator(hello)(request({}, new Readable({ read })), acceptingStart);
    expect(read).not.toHaveBeenCalled();
  });
});

describe("tsgi.errors", () => {
  it("passes strings and bytes to the gateway's stream at once", () => {
    const environ = request();
    void validator((inner, startResponse) => {
      inner["tsgi.errors"].write("text, ");
      inner["tsgi.errors"].write(Buffer.from("bytes"));
      return hello(inner, startResponse);
    })(environ, acceptingStart);
    expect(errorsText(environ)).toBe("text, bytes");
  });

  it("takes only strings and Uint8Arrays from the application", () => {
    const app: Application = (environ) => {
      environ["tsgi.errors"].write(42);
      return [];
    };
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "env.errors-use",
      "tsgi.errors.write() was given a number",
    );
  });

  it("must not be ended by the application", () => {
    const app: Application = (environ) => {
      environ["tsgi.errors"].end();
      return [];
    };
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "env.errors-use",
      "tsgi.errors must not be ended",
    );
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

  it.each(["200", "2000 OK", "abc OK", "200 OK\r\nX: y", 200])(
    'rejects the status %j: it must be "NNN Reason"',
    (status) => {
      expectViolation(
        startWith(status, []),
        "app",
        "status.format",
        `status ${JSON.stringify(status)} must be "NNN Reason"`,
      );
    },
  );

  it.each([
    ["not an array", "nope", "header.list", "headers must be an array"],
    ["not a pair", [["X-One"]], "header.list", 'header ["X-One"] is not a [name, value] pair'],
    [
      "a name that is not a token",
      [["Bad Name", "v"]],
      "header.name",
      'invalid header name "Bad Name"',
    ],
    [
      "a CR LF in a value",
      [["Location", "/a\r\nInjected: 1"]],
      "header.value",
      "invalid value for header Location",
    ],
    [
      "a character above U+00FF in a value",
      [["X-Sign", "\u20ac"]],
      "header.value",
      "invalid value for header X-Sign",
    ],
    [
      "a value that is not a string",
      [["X-Count", 5]],
      "header.list",
      "invalid value for header X-Count",
    ],
    [
      "a hop-by-hop name and a bad value",
      [["Connection", "a\nb"]],
      "header.value",
      "invalid value for header Connection",
    ],
    [
      "a bad pair after a good one",
      [
        ["X-Ok", "1"],
        ["Bad Name", "v"],
      ],
      "header.name",
      'invalid header name "Bad Name"',
    ],
  ])("rejects headers with %s", (_what, headers, id, detail) => {
    expectViolation(startWith("200 OK", headers), "app", id, detail);
  });

  it.each([
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Trailers",
    "Transfer-Encoding",
    "upgrade",
  ])("rejects the hop-by-hop header %s", (name) => {
    expectViolation(
      startWith("200 OK", [[name, "x"]]),
      "app",
      "header.hop-by-hop",
      `hop-by-hop header ${name} may only be set by the gateway`,
    );
  });

  it.each(["100 Continue", "103 Early Hints", "204 No Content"])(
    "rejects Content-Length on %s (RFC 9110 section 8.6)",
    (status) => {
      const detail = `a ${status.slice(0, 3)} response must not have a Content-Length header`;
      expectViolation(
        startWith(status, [["content-length", "0"]]),
        "app",
        "length.no-body",
        detail,
      );
    },
  );

  it.each(["100 Continue", "204 No Content", "304 Not Modified"])(
    "allows Content-Type on %s",
    (status) => {
      const app: Application = (_environ, startResponse) => {
        startResponse(status, [["Content-Type", "text/plain"]]);
        return [];
      };
      expect(() => validator(app)(request(), acceptingStart)).not.toThrow();
    },
  );

  it("allows Content-Length on a 304: the length of the selected representation", () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("304 Not Modified", [["Content-Length", "1234"]]);
      return [];
    };
    expect([...(validator(app)(request(), acceptingStart) as ClosableBody)]).toEqual([]);
  });

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
    expectViolation(
      startWith("200 OK", [["Content-Length", "12abc"]]),
      "app",
      "length.decimal",
      'invalid Content-Length "12abc": must be a decimal number',
    );
  });

  it("rejects Content-Length headers that disagree", () => {
    const headers = [
      ["Content-Length", "2"],
      ["content-length", "3"],
    ];
    expectViolation(
      startWith("200 OK", headers),
      "app",
      "length.decimal",
      "Content-Length given twice with different values (2 and 3)",
    );
  });

  it("rejects a second startResponse() without excInfo", () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", []);
      startResponse("404 Not Found", []);
      return [];
    };
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "start.once",
      "startResponse() was called a second time without excInfo",
    );
  });

  it("passes a second startResponse() with excInfo on to the gateway", () => {
    const gatewayStart = vi.fn(acceptingStart);
    const failure = new Error("boom");
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", []);
      startResponse("500 Internal Server Error", [], failure);
      return [];
    };
    void validator(app)(request(), gatewayStart);
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
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "body.iterable",
      "the application returned",
    );
  });

  it("is checked when the application returns a promise", async () => {
    const app = (async (_environ: Environ, startResponse: StartResponse) => {
      startResponse("200 OK", []);
      return "hello";
    }) as unknown as Application;
    const error = await Promise.resolve(validator(app)(request(), acceptingStart)).catch(
      (e: unknown) => e,
    );
    expectViolation(
      error,
      "app",
      "body.iterable",
      "the application returned a string; the body must be an iterable of chunks, not a single chunk",
    );
  });

  it("must not yield a non-empty chunk before startResponse() was called", () => {
    const body = validator(() => ["early"])(request(), acceptingStart) as ClosableBody;
    expectViolation(
      caught(() => [...body]),
      "app",
      "body.lazy-start",
      "the body yielded a non-empty chunk before startResponse() was called",
    );
  });

  it("may yield empty chunks before calling startResponse()", async () => {
    const app: Application = function* (_environ, startResponse) {
      yield "";
      yield new Uint8Array(0);
      startResponse("200 OK", []);
      yield "late";
    };
    expect([...(validator(app)(request(), acceptingStart) as ClosableBody)]).toEqual([
      "",
      new Uint8Array(0),
      "late",
    ]);

    const asyncApp: Application = async function* (_environ, startResponse) {
      yield "";
      startResponse("200 OK", []);
      yield "late";
    };
    const chunks: Chunk[] = [];
    for await (const chunk of validator(asyncApp)(request(), acceptingStart) as ClosableAsyncBody)
      chunks.push(chunk);
    expect(chunks).toEqual(["", "late"]);
  });

  it("must not end before startResponse() was called", () => {
    const body = validator(() => [])(request(), acceptingStart) as ClosableBody;
    expectViolation(
      caught(() => [...body]),
      "app",
      "body.lazy-start",
      "the body ended before startResponse() was called",
    );
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
    expectViolation(
      caught(() => [...syncBody]),
      "app",
      "body.chunk",
      "the body yielded a number; a chunk must be a Uint8Array or a string",
    );

    const asyncApp = async function* (_environ: Environ, startResponse: StartResponse) {
      startResponse("200 OK", []);
      yield { text: "no" };
    } as unknown as Application;
    const asyncBody = validator(asyncApp)(request(), acceptingStart) as ClosableAsyncBody;
    const error = await asyncBody[Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => e);
    expectViolation(error, "app", "body.chunk", "the body yielded an object (Object)");
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
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "body.chunk",
      "write() was given null",
    );
  });

  it("must not use write() after the body was closed", () => {
    let write: ((chunk: Chunk) => unknown) | undefined;
    const app: Application = (_environ, startResponse) => {
      write = startResponse("200 OK", []);
      return [];
    };
    const body = validator(app)(request(), acceptingStart) as ClosableBody;
    void write?.("before close");
    Array.from(body);
    body.close();
    expectViolation(
      caught(() => write?.("late")),
      "app",
      "write.after-end",
      "write() was called after the body was closed",
    );
  });
});

describe("the application's Content-Length", () => {
  function respond(
    method: string,
    status: string,
    contentLength: string,
    body: Chunk[],
    written: Chunk[] = [],
  ): ClosableBody {
    const app: Application = (_environ, startResponse) => {
      const write = startResponse(status, [["Content-Length", contentLength]]);
      for (const chunk of written) void write(chunk);
      return body;
    };
    return validator(app)(request({ REQUEST_METHOD: method }), acceptingStart) as ClosableBody;
  }

  it("passes a body of exactly the declared length, counted in UTF-8 bytes", () => {
    expect([...respond("GET", "200 OK", "8", ["те", "ст"])]).toEqual(["те", "ст"]);
  });

  it("counts the bytes given to write() and those of the body together", () => {
    expect([...respond("GET", "200 OK", "6", ["def"], ["abc"])]).toEqual(["def"]);
    const body = respond("GET", "200 OK", "5", ["def"], ["abc"]);
    expectViolation(
      caught(() => [...body]),
      "app",
      "length.over",
      "the body is longer than its Content-Length: 6 bytes so far, 5 declared",
    );
  });

  it("must not be exceeded by the body", () => {
    const body = respond("GET", "200 OK", "3", ["ab", "cd"]);
    const iterator = body[Symbol.iterator]();
    expect(iterator.next()).toEqual({ done: false, value: "ab" });
    expectViolation(
      caught(() => iterator.next()),
      "app",
      "length.over",
      "the body is longer than its Content-Length: 4 bytes so far, 3 declared",
    );
  });

  it("must not be exceeded by write()", () => {
    const app: Application = (_environ, startResponse) => {
      const write = startResponse("200 OK", [["Content-Length", "2"]]);
      void write("abc");
      return [];
    };
    expectViolation(
      caught(() => validator(app)(request(), acceptingStart)),
      "app",
      "length.over",
      "the body is longer than its Content-Length",
    );
  });

  it("must be reached by the body", async () => {
    expectViolation(
      caught(() => [...respond("GET", "200 OK", "5", ["abc"])]),
      "app",
      "length.short",
      "the body ended after 3 bytes, short of its Content-Length (5)",
    );

    const asyncApp: Application = async function* (_environ, startResponse) {
      startResponse("200 OK", [["Content-Length", "5"]]);
      yield "abc";
    };
    const iterator = (validator(asyncApp)(request(), acceptingStart) as ClosableAsyncBody)[
      Symbol.asyncIterator
    ]();
    await iterator.next();
    expectViolation(
      await iterator.next().catch((e: unknown) => e),
      "app",
      "length.short",
      "the body ended after 3 bytes",
    );
  });

  it("is not counted in a response to HEAD, which keeps the length a GET would have", () => {
    expect([...respond("HEAD", "200 OK", "5", [])]).toEqual([]);
    expect([...respond("HEAD", "200 OK", "1", ["more than one byte"])]).toEqual([
      "more than one byte",
    ]);
  });

  it("is not counted with a status that has no body", () => {
    expect([...respond("GET", "304 Not Modified", "1234", [])]).toEqual([]);
  });

  it("follows the status and headers that excInfo put in place of the first ones", () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", [["Content-Length", "100"]]);
      startResponse("500 Internal Server Error", [], new Error("changed its mind"));
      return ["short"];
    };
    expect([...(validator(app)(request(), acceptingStart) as ClosableBody)]).toEqual(["short"]);
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
    expect(typeof helloBody().body.close).toBe("function");
  });

  it("must not call close() twice", () => {
    const { body } = helloBody();
    Array.from(body);
    body.close();
    expectViolation(
      caught(() => body.close()),
      "gateway",
      "close.once",
      "close() was called on the body a second time",
    );
  });

  it("must call close(): assertNoViolations() reports a body that was never closed", () => {
    const { validated, body } = helloBody();
    Array.from(body);
    expectViolation(
      caught(() => validated.assertNoViolations()),
      "gateway",
      "close.once",
      "close() was never called on the body of GET /",
    );
  });

  it("passes assertNoViolations() once the body was iterated and closed", () => {
    const { validated, body } = helloBody();
    Array.from(body);
    body.close();
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("must not iterate the body twice", () => {
    const { body } = helloBody();
    Array.from(body);
    expectViolation(
      caught(() => [...body]),
      "gateway",
      "body.once",
      "the body was iterated a second time",
    );
  });

  it("must not iterate the body after close()", () => {
    const { body } = helloBody();
    body.close();
    expectViolation(
      caught(() => [...body]),
      "gateway",
      "close.last",
      "the body was iterated after close()",
    );
  });

  it("must not call next() after close()", () => {
    const { body } = helloBody();
    const iterator = body[Symbol.iterator]();
    while (!iterator.next().done);
    body.close();
    expectViolation(
      caught(() => iterator.next()),
      "gateway",
      "close.last",
      "next() was called on the body's iterator after close()",
    );
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
      "close.return",
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
        Array.from(body);
      })();
      for (let attempt = 0; attempt < 50 && warnings.length === 0; attempt++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(warnings).toHaveLength(1);
      expectViolation(
        warnings[0],
        "gateway",
        "close.once",
        "close() was never called on the body of GET /dropped",
      );
      expectViolation(
        caught(() => validated.assertNoViolations()),
        "gateway",
        "close.once",
        "close() was never called on the body of GET /dropped",
      );
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
    [
      "a 204 with a Content-Type",
      (_environ, startResponse) => {
        startResponse("204 No Content", [["Content-Type", "text/plain"]]);
        return [];
      },
      "",
    ],
    [
      "a generator that yields an empty chunk before it starts the response",
      function* (_environ, startResponse) {
        yield "";
        startResponse("200 OK", []);
        yield "late";
      },
      "late",
    ],
    [
      "a Content-Length declared and met across write() and the body",
      (_environ, startResponse) => {
        const write = startResponse("200 OK", [["Content-Length", "6"]]);
        void write("abc");
        return ["def"];
      },
      "abcdef",
    ],
  ];

  it.each(valid)("passes %s", async (_what, app, expectedBody) => {
    const validated = validator(app);
    const { outcome, sink } = await serve(validated);
    expect(outcome).toBe("complete");
    expect(sink.body()).toBe(expectedBody);
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it("passes a POST body of CONTENT_LENGTH bytes", async () => {
    const echo = valid[4][1];
    const validated = validator(echo);
    const environ = request(
      { REQUEST_METHOD: "POST", CONTENT_LENGTH: "4" },
      Readable.from([Buffer.from("ping")]),
    );
    const { outcome, sink } = await serve(validated, environ);
    expect(outcome).toBe("complete");
    expect(sink.body()).toBe("got ping");
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

  it("passes an answer to HEAD that keeps the length a GET would have and sends no body", async () => {
    const validated = validator((_environ, startResponse) => {
      startResponse("200 OK", [["Content-Length", "5"]]);
      return [];
    });
    const { outcome, sink } = await serve(validated, request({ REQUEST_METHOD: "HEAD" }));
    expect(outcome).toBe("complete");
    expect(sink.headers).toEqual([["Content-Length", "5"]]);
    expect(() => validated.assertNoViolations()).not.toThrow();
  });

  it.each([
    ["longer", ["abc", "def"], "length.over"],
    ["shorter", ["abc"], "length.short"],
  ])(
    "reports a body %s than its Content-Length, and the engine cuts the response off",
    async (_what, chunks, id) => {
      const validated = validator((_environ, startResponse) => {
        startResponse("200 OK", [["Content-Length", "5"]]);
        return chunks;
      });
      const { outcome, sink } = await serve(validated);
      expect(outcome).toBe("cut");
      expect(sink.body()).toBe("abc");
      expect((caught(() => validated.assertNoViolations()) as ValidationError).rule).toBe(id);
    },
  );

  it("records a violation the engine turned into a 500, for assertNoViolations() to throw once", async () => {
    const validated = validator((_environ, startResponse) => {
      startResponse("200", []);
      return [];
    });
    const environ = request();
    const { outcome, sink } = await serve(validated, environ);
    expect(outcome).toBe("failed");
    expect(sink.status).toBe("500 Internal Server Error");
    expect(errorsText(environ)).toContain(
      'ValidationError: [app] status "200" must be "NNN Reason"',
    );
    expect(errorsText(environ)).toContain("[status.format]");
    expectViolation(
      caught(() => validated.assertNoViolations()),
      "app",
      "status.format",
      'status "200" must be "NNN Reason"',
    );
    expect(() => validated.assertNoViolations()).not.toThrow();
  });
});

describe("under the CGI gateway", () => {
  it("passes a POST whose stdin holds more than CONTENT_LENGTH bytes: the gateway stops at CONTENT_LENGTH", async () => {
    const directory = mkdtempSync(join(tmpdir(), "tsgi-validator-"));
    writeFileSync(join(directory, "stdin"), "pingEXTRA");
    const stdinFd = openSync(join(directory, "stdin"), "r");
    const stdoutFd = openSync(join(directory, "stdout"), "w");
    const errors = new TextCollector();
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
    expect(readFileSync(join(directory, "stdout"), "latin1")).toMatch(
      /^Status: 200 OK\r\n[^]*\r\n\r\ngot ping$/,
    );
    expect(() => validated.assertNoViolations()).not.toThrow();
  });
});

describe("under the FastCGI gateway", () => {
  const open = trackClients();
  let server: FastCgiServer | undefined;
  afterEach(async () => {
    await server?.close(0);
    server = undefined;
  });

  it("passes a POST with the params nginx sends, HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH included", async () => {
    const validated = validator(async (environ, startResponse) => {
      let length = 0;
      for await (const chunk of environ["tsgi.input"]) length += chunk.length;
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return [`${environ.CONTENT_TYPE} ${length}`];
    });
    const path = join(mkdtempSync(join(tmpdir(), "tsgi-validator-")), "fcgi.sock");
    const errors = new TextCollector();
    server = await serveFastCgi(validated, { listen: path, errors });
    const params = paramsFor("/form", {
      REQUEST_METHOD: "POST",
      CONTENT_TYPE: "application/x-www-form-urlencoded",
      CONTENT_LENGTH: "7",
      HTTP_CONTENT_TYPE: "application/x-www-form-urlencoded",
      HTTP_CONTENT_LENGTH: "7",
    });
    const result = await (await open({ path })).request({ params, stdin: "a=1&b=2" });
    expect(result.response().body.toString()).toBe("application/x-www-form-urlencoded 7");
    expect(errors.text).toBe("");
    expect(() => validated.assertNoViolations()).not.toThrow();
  });
});
