// fromFetchHandler's request side: the URL path an app routes on (PATH_INFO,
// or the public path with `fullPath`), the environ as the handler's second
// argument, and headers a front end passes twice. Checked with a real Hono app.

import { Hono } from "hono";
import { execFileSync } from "node:child_process";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { fromFetchHandler } from "../src/adapters/index.js";
import type { Environ } from "../src/types.js";
import { start } from "./helpers/engine-harness.js";
import { REPO } from "./helpers/processes.js";

/** Runs `app` on the variables (and body) and returns status and body text. */
async function serve(
  app: ReturnType<typeof fromFetchHandler>,
  vars: Record<string, string>,
  body?: Buffer | string,
): Promise<{ status: string; body: string }> {
  const input = new PassThrough();
  input.end(body ?? "");
  const run = start(app, vars, input);
  expect(await run.outcome).toBe("complete");
  expect(run.errors.text).toBe("");
  return { status: run.sink.status ?? "", body: run.sink.body() };
}

/** The URL a plain handler is given for `vars`. */
async function urlFor(vars: Record<string, string>, fullPath?: boolean): Promise<string> {
  let url = "";
  const app = fromFetchHandler(
    (request) => {
      url = request.url;
      return new Response("ok");
    },
    fullPath === undefined ? {} : { fullPath },
  );
  await serve(app, { HTTP_HOST: "h.test", ...vars });
  return url;
}

describe("fromFetchHandler: the URL path", () => {
  it("is PATH_INFO by default: the app routes relative to its mount point", async () => {
    expect(await urlFor({ SCRIPT_NAME: "/app", PATH_INFO: "/hello", QUERY_STRING: "a=1" })).toBe(
      "http://h.test/hello?a=1",
    );
    expect(await urlFor({ SCRIPT_NAME: "/app", PATH_INFO: "" })).toBe("http://h.test/");
  });

  it("is SCRIPT_NAME + PATH_INFO with fullPath, the mount point alone when PATH_INFO is empty", async () => {
    expect(await urlFor({ SCRIPT_NAME: "/app", PATH_INFO: "/hello" }, true)).toBe(
      "http://h.test/app/hello",
    );
    expect(await urlFor({ SCRIPT_NAME: "/app", PATH_INFO: "" }, true)).toBe("http://h.test/app");
    expect(await urlFor({ SCRIPT_NAME: "", PATH_INFO: "" }, true)).toBe("http://h.test/");
    expect(await urlFor({ SCRIPT_NAME: "/app", PATH_INFO: "/hello" }, false)).toBe(
      "http://h.test/hello",
    );
  });

  it("keeps an escaped slash raw from REQUEST_URI where it agrees with PATH_INFO", async () => {
    const vars = {
      SCRIPT_NAME: "/app",
      PATH_INFO: "/pkg/@scope/name",
      REQUEST_URI: "/app/pkg/@scope%2Fname?x",
      QUERY_STRING: "x",
    };
    expect(await urlFor(vars)).toBe("http://h.test/pkg/@scope%2Fname?x");
    expect(await urlFor(vars, true)).toBe("http://h.test/app/pkg/@scope%2Fname?x");
  });

  it("re-encodes PATH_INFO when a rewrite made REQUEST_URI differ", async () => {
    const vars = {
      SCRIPT_NAME: "/dir/app.cgi",
      PATH_INFO: "/users/7",
      REQUEST_URI: "/dir/users/7",
    };
    expect(await urlFor(vars)).toBe("http://h.test/users/7");
    expect(await urlFor(vars, true)).toBe("http://h.test/dir/app.cgi/users/7");
  });
});

describe("fromFetchHandler: the environ as second argument", () => {
  it("is the request's environ", async () => {
    let seen: Environ | undefined;
    const app = fromFetchHandler((_request, environ) => {
      seen = environ;
      return new Response("ok");
    });
    await serve(app, { SCRIPT_NAME: "/app", PATH_INFO: "/x", REMOTE_ADDR: "203.0.113.5" });
    expect(seen?.SCRIPT_NAME).toBe("/app");
    expect(seen?.REMOTE_ADDR).toBe("203.0.113.5");
    expect(typeof seen?.["tsgi.input"]).toBe("object");
  });
});

describe("fromFetchHandler: headers a front end passes twice", () => {
  it("sends CONTENT_TYPE and CONTENT_LENGTH once when HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH are also there", async () => {
    let headers: [string, string][] = [];
    const app = fromFetchHandler((request) => {
      headers = [...request.headers];
      return new Response("ok");
    });
    await serve(
      app,
      {
        REQUEST_METHOD: "POST",
        CONTENT_TYPE: "text/plain",
        HTTP_CONTENT_TYPE: "text/plain",
        CONTENT_LENGTH: "3",
        HTTP_CONTENT_LENGTH: "3",
      },
      "abc",
    );
    expect(headers.filter(([name]) => name === "content-type")).toEqual([
      ["content-type", "text/plain"],
    ]);
    expect(headers.filter(([name]) => name === "content-length")).toEqual([
      ["content-length", "3"],
    ]);
  });

  it("keeps HTTP_CONTENT_TYPE when there is no CONTENT_TYPE", async () => {
    let type: string | null = null;
    const app = fromFetchHandler((request) => {
      type = request.headers.get("content-type");
      return new Response("ok");
    });
    await serve(app, { HTTP_CONTENT_TYPE: "text/x-only-header" });
    expect(type).toBe("text/x-only-header");
  });
});

describe("a Hono application through fromFetchHandler", () => {
  function honoApp(): Hono {
    const hono = new Hono();
    hono.get("/hello", (c) => c.text(`hello at ${c.req.path}`));
    hono.get("/", (c) => c.text("root"));
    hono.get("/env", (c) => {
      const env = c.env as Environ;
      return c.json({ scriptName: env.SCRIPT_NAME, requestUri: env.REQUEST_URI });
    });
    hono.post("/form", async (c) => {
      const form = await c.req.parseBody();
      return c.json(form);
    });
    hono.post("/upload", async (c) => {
      const form = await c.req.formData();
      const file = form.get("file") as File;
      return c.json({ name: file.name, size: file.size, text: await file.text() });
    });
    return hono;
  }
  const mounted = { SCRIPT_NAME: "/app", HTTP_HOST: "h.test" };

  it("routes /hello under SCRIPT_NAME /app on its own route /hello", async () => {
    const app = fromFetchHandler(honoApp().fetch);
    const result = await serve(app, {
      ...mounted,
      PATH_INFO: "/hello",
      REQUEST_URI: "/app/hello",
    });
    expect(result).toEqual({ status: "200 OK", body: "hello at /hello" });
    expect((await serve(app, { ...mounted, PATH_INFO: "" })).body).toBe("root");
  });

  it("routes the same request with fullPath and basePath('/app')", async () => {
    const app = fromFetchHandler(new Hono().basePath("/app").route("/", honoApp()).fetch, {
      fullPath: true,
    });
    const result = await serve(app, { ...mounted, PATH_INFO: "/hello" });
    expect(result).toEqual({ status: "200 OK", body: "hello at /app/hello" });
    expect((await serve(app, { ...mounted, PATH_INFO: "" })).body).toBe("root");
    // Without the option the prefix is missing and the based routes do not match.
    const unprefixed = fromFetchHandler(new Hono().basePath("/app").route("/", honoApp()).fetch);
    expect((await serve(unprefixed, { ...mounted, PATH_INFO: "/hello" })).status).toBe(
      "404 Not Found",
    );
  });

  it("reads the environ as c.env", async () => {
    const app = fromFetchHandler(honoApp().fetch);
    const result = await serve(app, { ...mounted, PATH_INFO: "/env", REQUEST_URI: "/app/env" });
    expect(JSON.parse(result.body)).toEqual({ scriptName: "/app", requestUri: "/app/env" });
  });

  it("parses a urlencoded form posted with the content type passed twice", async () => {
    const body = "name=caf%C3%A9&n=1";
    const app = fromFetchHandler(honoApp().fetch);
    const result = await serve(
      app,
      {
        ...mounted,
        REQUEST_METHOD: "POST",
        PATH_INFO: "/form",
        CONTENT_TYPE: "application/x-www-form-urlencoded",
        HTTP_CONTENT_TYPE: "application/x-www-form-urlencoded",
        CONTENT_LENGTH: String(body.length),
        HTTP_CONTENT_LENGTH: String(body.length),
      },
      body,
    );
    expect(result.status).toBe("200 OK");
    expect(JSON.parse(result.body)).toEqual({ name: "café", n: "1" });
  });

  it("parses a multipart upload posted with the content type passed twice", async () => {
    const form = new FormData();
    form.append("file", new Blob(["x".repeat(5000)]), "data.txt");
    const encoded = new Request("http://h.test/", { method: "POST", body: form });
    const type = encoded.headers.get("content-type")!;
    const body = Buffer.from(await encoded.arrayBuffer());
    const app = fromFetchHandler(honoApp().fetch);
    const result = await serve(
      app,
      {
        ...mounted,
        REQUEST_METHOD: "POST",
        PATH_INFO: "/upload",
        CONTENT_TYPE: type,
        HTTP_CONTENT_TYPE: type,
        CONTENT_LENGTH: String(body.length),
        HTTP_CONTENT_LENGTH: String(body.length),
      },
      body,
    );
    expect(result.status).toBe("200 OK");
    expect(JSON.parse(result.body)).toEqual({
      name: "data.txt",
      size: 5000,
      text: "x".repeat(5000),
    });
  });
});

/** The Request a plain handler is given for `vars` (and body), after the handler has run. */
async function requestFor(
  vars: Record<string, string>,
  body?: string,
  use: (request: Request) => unknown = () => {},
): Promise<{ request: Request; used: unknown }> {
  let request: Request | undefined;
  let used: unknown;
  const app = fromFetchHandler(async (given) => {
    request = given;
    used = await use(given);
    return new Response("ok");
  });
  await serve(app, vars, body);
  return { request: request!, used };
}

describe("fromFetchHandler: the Request, built lazily", () => {
  it("is an instance of Request whose URL reads as the URL parser would give it", async () => {
    const cases: Record<string, string>[] = [
      { HTTP_HOST: "Example.TEST:80", PATH_INFO: "/a" },
      { HTTP_HOST: "example.test:0080", PATH_INFO: "/a" },
      { HTTP_HOST: "1.2.3", PATH_INFO: "/a" },
      { HTTP_HOST: "[0:0::1]:8080", PATH_INFO: "/a" },
      { HTTP_HOST: "h.test", PATH_INFO: "/a/./b/../c" },
      { HTTP_HOST: "h.test", PATH_INFO: "/x", REQUEST_URI: "/%2e%2E/x" },
      { HTTP_HOST: "h.test", PATH_INFO: "/a'b", QUERY_STRING: "q='x'&r=\"<>`" },
      { HTTP_HOST: "h.test", PATH_INFO: "//double", QUERY_STRING: "a=%zz" },
      { HTTPS: "on", HTTP_HOST: "h.test:443", PATH_INFO: "/" },
    ];
    for (const vars of cases) {
      const { request } = await requestFor(vars);
      expect(request).toBeInstanceOf(Request);
      expect(request.url).toBe(new Request(request.url).url);
      expect(request.url).toBe(new URL(request.url).href);
    }
    expect((await requestFor({ HTTP_HOST: "Example.TEST:80", PATH_INFO: "/a" })).request.url).toBe(
      "http://example.test/a",
    );
  });

  it("gives method, headers, body and signal as a real Request does", async () => {
    const { request, used } = await requestFor(
      {
        REQUEST_METHOD: "post",
        HTTP_HOST: "h.test",
        PATH_INFO: "/p",
        CONTENT_TYPE: "text/plain",
        CONTENT_LENGTH: "5",
        HTTP_X_ONE: "1",
      },
      "hello",
      async (given) => ({
        method: given.method,
        header: given.headers.get("x-one"),
        text: await given.text(),
        bodyUsed: given.bodyUsed,
        aborted: given.signal.aborted,
        tag: Object.prototype.toString.call(given),
      }),
    );
    expect(used).toEqual({
      method: "POST",
      header: "1",
      text: "hello",
      bodyUsed: true,
      aborted: false,
      tag: "[object Request]",
    });
    expect(request.method).toBe("POST");
  });

  it("keeps a method's case where fetch does, and can be cloned or wrapped in a new Request", async () => {
    const { used } = await requestFor(
      { REQUEST_METHOD: "purge", HTTP_HOST: "h.test", PATH_INFO: "/w", CONTENT_LENGTH: "3" },
      "abc",
      async (given) => {
        const clone = given.clone();
        const wrapped = new Request(given, { headers: { "x-added": "1" } });
        return {
          method: given.method,
          wrapped: [wrapped.method, wrapped.url, wrapped.headers.get("x-added")],
          body: await wrapped.text(),
          clone: [clone.url, await clone.text()],
        };
      },
    );
    expect(used).toEqual({
      method: "purge",
      wrapped: ["purge", "http://h.test/w", "1"],
      body: "abc",
      clone: ["http://h.test/w", "abc"],
    });
  });

  it("answers 400 to a Host the URL parser refuses", async () => {
    const run = start(
      fromFetchHandler(() => new Response("never")),
      { HTTP_HOST: "a%zz" },
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.status).toBe("400 Bad Request");
  });
});

describe("fromFetchHandler: a Response made from a string or bytes", () => {
  const bodies: [string, () => Response, string][] = [
    ["a string", () => new Response("héllo"), "héllo"],
    ["a Uint8Array", () => new Response(new TextEncoder().encode("bytes")), "bytes"],
    ["an ArrayBuffer", () => new Response(new TextEncoder().encode("buffer").buffer), "buffer"],
    ["Response.json", () => Response.json({ a: 1 }), '{"a":1}'],
    ["a Blob", () => new Response(new Blob(["blob"])), "blob"],
  ];
  for (const [name, make, text] of bodies) {
    it(`sends ${name} whole, with its Content-Length`, async () => {
      const run = start(fromFetchHandler(make));
      expect(await run.outcome).toBe("complete");
      expect(run.sink.body()).toBe(text);
      expect(run.sink.header("content-length")).toBe(String(Buffer.byteLength(text)));
    });
  }

  it("sends what is left of a body the app already began to read, not its source again", async () => {
    const run = start(
      fromFetchHandler(async () => {
        const response = new Response("abc");
        const reader = response.body!.getReader();
        await reader.read();
        reader.releaseLock();
        return response;
      }),
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.body()).toBe("");
    const used = new Response("consumed");
    await used.text();
    const failing = start(fromFetchHandler(() => used));
    // A used body cannot be sent again: the app's error, not the first source sent twice.
    expect(await failing.outcome).not.toBe("complete");
  });
});

describe("fromFetchHandler: the light Response in place of the global one", () => {
  // Installed by the first fromFetchHandler() call of this file, as in a process that runs one.
  const make = () => new Response("héllo", { headers: { "X-A": "1" } });

  it("is what `new Response` makes now, and behaves as Node's own: instanceof, status, headers, body, clone", async () => {
    fromFetchHandler(() => make());
    expect(Response.name).toBe("LightResponse");
    const light = make();
    const native = Response.json({ a: 1 }); // Node's own class still makes these
    expect(light).toBeInstanceOf(Response);
    expect(native).toBeInstanceOf(Response);
    expect(Object.prototype.toString.call(light)).toBe("[object Response]");
    expect([light.status, light.ok, light.statusText, light.headers.get("x-a")]).toEqual([
      200,
      true,
      "",
      "1",
    ]);
    expect(light.headers.get("content-type")).toBe("text/plain;charset=UTF-8");
    expect(light.bodyUsed).toBe(false);
    const copy = light.clone();
    expect(await light.text()).toBe("héllo");
    expect(light.bodyUsed).toBe(true);
    expect(await copy.arrayBuffer()).toEqual(new TextEncoder().encode("héllo").buffer);
    expect(await new Response(null, { status: 204 }).text()).toBe("");
  });

  it("refuses what Node's own refuses, with the same errors", () => {
    expect(() => new Response("x", { status: 600 })).toThrow(RangeError);
    expect(() => new Response("x", { status: 204 })).toThrow(TypeError);
    expect(() => new Response("x", { headers: { "X-Bad": "a\r\nb" } })).toThrow(TypeError);
    expect(() => new Response("x", { statusText: "bad\n" })).toThrow(TypeError);
  });

  it("keeps a copy of bytes: changing them after `new Response` changes nothing sent", async () => {
    const bytes = new TextEncoder().encode("bytes");
    const run = start(
      fromFetchHandler(() => {
        const response = new Response(bytes);
        bytes[0] = 0x42;
        return response;
      }),
    );
    expect(await run.outcome).toBe("complete");
    expect(run.sink.body()).toBe("bytes");
    expect(run.sink.header("content-type")).toBeUndefined();
  });

  it("sends headers set on the response after it was made (Hono middleware after next())", async () => {
    const hono = new Hono();
    hono.use(async (c, next) => {
      await next();
      c.res.headers.set("X-After", "yes");
    });
    hono.get("/", (c) => c.text("hi", 201));
    const run = start(fromFetchHandler(hono.fetch), { PATH_INFO: "/" });
    expect(await run.outcome).toBe("complete");
    expect(run.sink.status).toBe("201 Created");
    expect(run.sink.header("x-after")).toBe("yes");
    expect(run.sink.header("content-type")).toMatch(/^text\/plain/);
    expect(run.sink.body()).toBe("hi");
  });

  it("overrideGlobalObjects: false keeps Node's own Response", () => {
    const script = `import("./dist/fetch.js").then(({ fromFetchHandler }) => {
      fromFetchHandler(() => new Response(""), { overrideGlobalObjects: false });
      process.stdout.write(Response.name);
    });`;
    const name = execFileSync(process.execPath, ["-e", script], { cwd: REPO, encoding: "utf8" });
    expect(name).toBe("Response");
  });
});
