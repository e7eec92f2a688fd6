// compose() order, mount() dispatch (longest prefix, whole segments, SCRIPT_NAME
// and PATH_INFO, 404) and copyEnviron()'s isolation of the caller's environ.

import { Readable, Writable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { runApplication, type ResponseSink } from "../src/engine.js";
import { makeEnviron } from "../src/environ.js";
import { compose, copyEnviron, mount, type Middleware } from "../src/middleware.js";
import type { Application, Environ, HeaderList, StartResponse } from "../src/types.js";
import { validator } from "../src/validator/index.js";

function request(pathInfo: string, scriptName = ""): Environ {
  return makeEnviron(
    {
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: scriptName,
      PATH_INFO: pathInfo,
      QUERY_STRING: "",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SERVER_PROTOCOL: "HTTP/1.1",
    },
    {
      input: Readable.from([]),
      errors: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
      multithread: false,
      multiprocess: false,
      runOnce: false,
    },
  );
}

const acceptingStart: StartResponse = () => () => {};

/** An application that answers with its name and the SCRIPT_NAME / PATH_INFO it was given. */
function named(name: string): Application {
  return (environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`${name} ${JSON.stringify(environ.SCRIPT_NAME)} ${JSON.stringify(environ.PATH_INFO)}`];
  };
}

async function get(
  app: Application,
  environ: Environ,
): Promise<{ status: string | undefined; headers: HeaderList; body: string }> {
  let status: string | undefined;
  let headers: HeaderList = [];
  const chunks: Buffer[] = [];
  const sink: ResponseSink = {
    sendHeaders(sentStatus, sentHeaders) {
      status = sentStatus;
      headers = sentHeaders;
    },
    write: (data) => void chunks.push(Buffer.from(data)),
    end() {},
    abort() {},
  };
  // Under the validator: what mount() passes on must be a valid environ.
  const validated = validator(app);
  await runApplication(validated, environ, sink);
  validated.assertNoViolations();
  return { status, headers, body: Buffer.concat(chunks).toString() };
}

describe("compose()", () => {
  /** A middleware that logs when a request reaches it and adds its name to the response headers. */
  function tracing(name: string, log: string[]): Middleware {
    return (app) => (environ, startResponse) => {
      log.push(name);
      return app(environ, (status, headers, excInfo) =>
        startResponse(status, [...headers, ["X-Via", name]], excInfo),
      );
    };
  }

  it("makes the first middleware written the outermost: it sees the request first and the response last", async () => {
    const log: string[] = [];
    const app: Application = (environ, startResponse) => {
      log.push("app");
      return named("app")(environ, startResponse);
    };
    const { headers } = await get(
      compose(tracing("a", log), tracing("b", log), tracing("c", log))(app),
      request("/"),
    );
    expect(log).toEqual(["a", "b", "c", "app"]);
    // The response passes back out through c, then b, then a: each appends as it goes.
    expect(headers.filter(([name]) => name === "X-Via").map(([, value]) => value)).toEqual([
      "c",
      "b",
      "a",
    ]);
  });

  it("compose(a, b)(app) is a(b(app))", () => {
    const order: string[] = [];
    const a: Middleware = (inner) => (order.push("a wraps"), inner);
    const b: Middleware = (inner) => (order.push("b wraps"), inner);
    compose(a, b)(named("app"));
    // b wraps the application first, then a wraps the result.
    expect(order).toEqual(["b wraps", "a wraps"]);
  });

  it("returns the application itself when given no middleware", () => {
    const app = named("app");
    expect(compose()(app)).toBe(app);
  });
});

describe("mount()", () => {
  const site = named("site");
  const api = named("api");
  const v2 = named("v2");
  const app = mount({ "/": site, "/api": api, "/api/v2": v2 });

  it.each([
    ["/", 'site "" "/"'],
    ["", 'site "" ""'],
    ["/about", 'site "" "/about"'],
    ["/api", 'api "/api" ""'],
    ["/api/", 'api "/api" "/"'],
    ["/api/users/7", 'api "/api" "/users/7"'],
    ["/api/v2", 'v2 "/api/v2" ""'],
    ["/api/v2/users", 'v2 "/api/v2" "/users"'],
    ["/api/v20", 'api "/api" "/v20"'],
    ["/apix", 'site "" "/apix"'],
  ])(
    "sends %j to the longest whole-segment prefix, moving it to SCRIPT_NAME",
    async (pathInfo, expected) => {
      expect((await get(app, request(pathInfo))).body).toBe(expected);
    },
  );

  it("appends the prefix to an existing SCRIPT_NAME", async () => {
    expect((await get(app, request("/api/users", "/myapp"))).body).toBe(
      'api "/myapp/api" "/users"',
    );
    expect((await get(app, request("/users", "/myapp"))).body).toBe('site "/myapp" "/users"');
  });

  it("answers 404 in plain text when no prefix matches", async () => {
    const apiOnly = mount({ "/api": api });
    for (const pathInfo of ["/", "", "/apix", "/other/api"]) {
      const response = await get(apiOnly, request(pathInfo));
      expect(response.status).toBe("404 Not Found");
      expect(response.headers).toContainEqual(["Content-Type", "text/plain; charset=utf-8"]);
      expect(response.body).toBe("Not Found\n");
    }
  });

  it("ignores trailing slashes in prefixes, and takes '' for the root", async () => {
    const trailing = mount({ "/api/": api, "": site });
    expect((await get(trailing, request("/api/x"))).body).toBe('api "/api" "/x"');
    expect((await get(trailing, request("/x"))).body).toBe('site "" "/x"');
  });

  it("nests: a mounted mount() sees the outer prefix in SCRIPT_NAME", async () => {
    const nested = mount({ "/api": mount({ "/v1": named("v1") }) });
    expect((await get(nested, request("/api/v1/items"))).body).toBe('v1 "/api/v1" "/items"');
  });

  it("rejects a prefix without a leading slash, a prefix mounted twice, and a non-application", () => {
    expect(() => mount({ api })).toThrow('prefix "api" must start with "/"');
    expect(() => mount({ "/": site, "": api })).toThrow("mounts the same prefix twice");
    expect(() => mount({ "/api/": api, "/api": api })).toThrow("mounts the same prefix twice");
    expect(() => mount({ "/x": "not an app" as unknown as Application })).toThrow(
      '"/x" is not mapped to an application',
    );
  });

  it("leaves the caller's environ as it was, and keeps the mounted app's changes to itself", () => {
    const environ = request("/api/users", "/myapp");
    let seen: Environ | undefined;
    void mount({
      "/api": (inner, startResponse) => {
        seen = inner;
        inner.HTTP_X_ADDED = "by the app";
        return named("api")(inner, startResponse);
      },
    })(environ, acceptingStart);
    expect(seen?.SCRIPT_NAME).toBe("/myapp/api");
    expect(environ.SCRIPT_NAME).toBe("/myapp");
    expect(environ.PATH_INFO).toBe("/api/users");
    expect(environ.HTTP_X_ADDED).toBeUndefined();
    expect(seen?.["tsgi.input"]).toBe(environ["tsgi.input"]);
  });
});

describe("copyEnviron()", () => {
  /** An environ whose tsgi.input is built on first read, as the CGI gateway does. */
  function lazyEnviron(): { environ: Environ; build: ReturnType<typeof vi.fn> } {
    const environ = request("/");
    const build = vi.fn(() => Readable.from([]));
    Object.defineProperty(environ, "tsgi.input", {
      enumerable: true,
      configurable: true,
      get() {
        const value = build();
        Object.defineProperty(environ, "tsgi.input", {
          value,
          writable: true,
          enumerable: true,
          configurable: true,
        });
        return value;
      },
    });
    return { environ, build };
  }

  it("copies every key", () => {
    const environ = request("/x");
    const copy = copyEnviron(environ);
    expect(copy).not.toBe(environ);
    expect(Object.keys(copy)).toEqual(Object.keys(environ));
    expect(copy.PATH_INFO).toBe("/x");
    expect(copy["tsgi.errors"]).toBe(environ["tsgi.errors"]);
  });

  it("does not build a lazy value nobody reads, and builds it once when read through both", () => {
    const { environ, build } = lazyEnviron();
    const copy = copyEnviron(environ);
    expect(build).not.toHaveBeenCalled();
    const fromCopy = copy["tsgi.input"];
    expect(environ["tsgi.input"]).toBe(fromCopy);
    expect(copy["tsgi.input"]).toBe(fromCopy);
    expect(build).toHaveBeenCalledOnce();
  });

  it("keeps a value set on the copy from reaching the original, lazy keys included", () => {
    const { environ, build } = lazyEnviron();
    const copy = copyEnviron(environ);
    const replacement = Readable.from(["replaced"]);
    copy["tsgi.input"] = replacement as Environ["tsgi.input"];
    copy.PATH_INFO = "/changed";
    expect(copy["tsgi.input"]).toBe(replacement);
    expect(environ.PATH_INFO).toBe("/");
    expect(environ["tsgi.input"]).not.toBe(replacement);
    expect(build).toHaveBeenCalledOnce();
  });
});
