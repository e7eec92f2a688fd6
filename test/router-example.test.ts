// examples/router.js: each route answers as documented, under the validator.

import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { runApplication, type ResponseSink } from "../src/engine.js";
import { makeEnviron } from "../src/environ.js";
import type { Application, HeaderList } from "../src/types.js";
import { validator } from "../src/validator/index.js";

// Through a path TypeScript does not resolve: the example is plain JavaScript.
const examplePath: string = "../examples/router.js";
const { default: router } = (await import(examplePath)) as { default: Application };

interface Response {
  status: string | undefined;
  headers: HeaderList;
  body: string;
}

async function send(
  method: string,
  path: string,
  options: { body?: string; scriptName?: string } = {},
): Promise<Response> {
  const bytes = options.body === undefined ? undefined : Buffer.from(options.body, "utf8");
  const environ = makeEnviron(
    {
      REQUEST_METHOD: method,
      SCRIPT_NAME: options.scriptName ?? "",
      // A web server hands over the decoded path's bytes, which the environ holds as Latin-1.
      PATH_INFO: Buffer.from(path, "utf8").toString("latin1"),
      QUERY_STRING: "",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SERVER_PROTOCOL: "HTTP/1.1",
      ...(bytes ? { CONTENT_LENGTH: String(bytes.length), CONTENT_TYPE: "text/plain" } : {}),
    },
    {
      input: Readable.from(bytes ? [bytes] : []),
      errors: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
      multithread: false,
      multiprocess: false,
      runOnce: false,
    },
  );
  const response: Response = { status: undefined, headers: [], body: "" };
  const chunks: Buffer[] = [];
  const sink: ResponseSink = {
    sendHeaders(status, headers) {
      response.status = status;
      response.headers = headers;
    },
    write: (data) => void chunks.push(Buffer.from(data)),
    end() {},
    abort() {},
  };
  const validated = validator(router);
  await runApplication(validated, environ, sink);
  validated.assertNoViolations();
  response.body = Buffer.concat(chunks).toString("utf8");
  return response;
}

function header(response: Response, name: string): string | undefined {
  return response.headers.find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];
}

describe("examples/router.js", () => {
  it("GET / lists the routes", async () => {
    const response = await send("GET", "/");
    expect(response.status).toBe("200 OK");
    expect(header(response, "Content-Type")).toBe("text/plain; charset=utf-8");
    expect(response.body).toContain("GET /hello/<name>");
  });

  it("GET /hello/<name> greets by name, read as UTF-8", async () => {
    expect((await send("GET", "/hello/world")).body).toBe("Hello, world!\n");
    expect((await send("GET", "/hello/Zoë")).body).toBe("Hello, Zoë!\n");
  });

  it("GET /api/ links to the echo route through SCRIPT_NAME, wherever the example is mounted", async () => {
    expect(JSON.parse((await send("GET", "/api/")).body)).toEqual({ echo: "/api/echo" });
    expect(JSON.parse((await send("GET", "/api", { scriptName: "/demo" })).body)).toEqual({
      echo: "/demo/api/echo",
    });
  });

  it("POST /api/echo reads the body and reports it", async () => {
    const response = await send("POST", "/api/echo", { body: "héllo" });
    expect(response.status).toBe("200 OK");
    expect(header(response, "Content-Type")).toBe("application/json");
    expect(JSON.parse(response.body)).toEqual({ bytes: 6, text: "héllo" });
  });

  it("POST /api/echo refuses a body over 64 KiB with 413", async () => {
    const response = await send("POST", "/api/echo", { body: "x".repeat(64 * 1024 + 1) });
    expect(response.status).toBe("413 Content Too Large");
  });

  it("answers 405 with an Allow header for a known path and another method", async () => {
    const getEcho = await send("GET", "/api/echo");
    expect(getEcho.status).toBe("405 Method Not Allowed");
    expect(header(getEcho, "Allow")).toBe("POST");
    const postRoot = await send("POST", "/", { body: "" });
    expect(postRoot.status).toBe("405 Method Not Allowed");
    expect(header(postRoot, "Allow")).toBe("GET");
  });

  it("answers 404 for unknown paths, including extra segments", async () => {
    for (const path of ["/nope", "/hello", "/hello/a/b", "/api/nope"]) {
      const response = await send("GET", path);
      expect(response.status, path).toBe("404 Not Found");
      expect(response.body).toBe("Not Found\n");
    }
  });
});
