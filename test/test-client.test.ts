// Tests for testClient (src/test-client.ts): in-process requests with the
// HTTP gateway's environ, responses collected in memory, the validator on.

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { makeServer } from "../src/http/server.js";
import { testClient } from "../src/test-client.js";
import type { Application, Environ } from "../src/types.js";
import { ValidationError } from "../src/validator/index.js";
import { rawRequest } from "./helpers/engine-harness.js";

/** Answers with the environ's CGI variables as JSON. */
const environEcho: Application = (environ: Environ, startResponse) => {
  const vars = Object.fromEntries(
    Object.entries(environ).filter(
      ([key, value]) => typeof value === "string" && !key.includes("."),
    ),
  );
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ ...vars, url_scheme: environ["tsgi.url_scheme"] })];
};

const readBody = async (environ: Environ): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of environ["tsgi.input"]) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString("utf8");
};

describe("testClient", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    server = undefined;
  });

  it("sends the path, query and headers through the same environ the HTTP gateway builds", async () => {
    const response = await testClient(environEcho).get("/caf%C3%A9?x=1&y=%20", {
      headers: { "X-Token": "abc", X_Spoof: "no" },
    });
    const env = JSON.parse(response.text()) as Record<string, string>;
    expect(env).toMatchObject({
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: "",
      PATH_INFO: "/caf\u00c3\u00a9",
      QUERY_STRING: "x=1&y=%20",
      REQUEST_URI: "/caf%C3%A9?x=1&y=%20",
      HTTP_HOST: "localhost",
      HTTP_X_TOKEN: "abc",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SERVER_PROTOCOL: "HTTP/1.1",
      REMOTE_ADDR: "127.0.0.1",
      url_scheme: "http",
    });
    expect(env).not.toHaveProperty("HTTP_X_SPOOF");

    // The real server, same request: the same variables but for the ports and the Host.
    server = await makeServer(environEcho, { host: "127.0.0.1", port: 0, accessLog: false });
    const port = (server.address() as AddressInfo).port;
    const raw = await rawRequest(
      port,
      "GET /caf%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: localhost\r\nX-Token: abc\r\nX_Spoof: no\r\nConnection: close\r\n\r\n",
    );
    const served = JSON.parse(raw.subarray(raw.indexOf("\r\n\r\n") + 4).toString("utf8")) as Record<
      string,
      string
    >;
    const comparable = (vars: Record<string, string>) => {
      // These differ between the two requests by nature.
      const rest = { ...vars };
      for (const name of ["SERVER_PORT", "REMOTE_PORT", "HTTP_CONNECTION"]) delete rest[name];
      return rest;
    };
    expect(comparable(env)).toEqual(comparable(served));
  });

  it("posts a body with its Content-Length, and the application reads it from tsgi.input", async () => {
    const app: Application = async (environ, startResponse) => {
      const body = await readBody(environ);
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return [`${environ.CONTENT_LENGTH}:${environ.CONTENT_TYPE}:${body}`];
    };
    const client = testClient(app);
    const response = await client.post("/items", "héllo", {
      headers: { "Content-Type": "text/plain" },
    });
    expect(response.text()).toBe("6:text/plain:héllo");
    const bytes = await client.request("PUT", "/items", { body: new Uint8Array([1, 2, 3]) });
    expect(bytes.text()).toBe("3:undefined:\u0001\u0002\u0003");
  });

  it("returns status, statusText, the ordered headers, a header() lookup and the body bytes", async () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("201 Created", [
        ["Set-Cookie", "a=1"],
        ["Location", "/items/1"],
        ["set-cookie", "b=2"],
      ]);
      return ["made"];
    };
    const response = await testClient(app).post("/items");
    expect(response.status).toBe(201);
    expect(response.statusText).toBe("Created");
    expect(response.headers).toEqual([
      ["Set-Cookie", "a=1"],
      ["Location", "/items/1"],
      ["set-cookie", "b=2"],
      ["Content-Length", "4"],
    ]);
    expect(response.header("LOCATION")).toBe("/items/1");
    expect(response.header("x-missing")).toBeUndefined();
    expect(response.headerValues("set-cookie")).toEqual(["a=1", "b=2"]);
    expect(response.body).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(response.body).toString()).toBe("made");
    expect(response.outcome).toBe("complete");
  });

  it("drops the body of a HEAD response, as a server does, and keeps its headers", async () => {
    const app: Application = (_environ, startResponse) => {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return ["not sent"];
    };
    const response = await testClient(app).head("/");
    expect(response.header("content-length")).toBe("8");
    expect(response.body.length).toBe(0);
  });

  it("takes the scheme and Host from an absolute URL", async () => {
    const env = JSON.parse(
      (await testClient(environEcho).get("https://example.test:8443/x")).text(),
    ) as Record<string, string>;
    expect(env).toMatchObject({
      url_scheme: "https",
      HTTPS: "on",
      HTTP_HOST: "example.test:8443",
      PATH_INFO: "/x",
      SERVER_NAME: "example.test",
    });
  });

  it("rejects with the ValidationError when the application breaks the contract", async () => {
    const hopByHop: Application = (_environ, startResponse) => {
      startResponse("200 OK", [["Connection", "close"]]);
      return ["x"];
    };
    const request = testClient(hopByHop).get("/");
    await expect(request).rejects.toBeInstanceOf(ValidationError);
    await expect(request).rejects.toThrow(/hop-by-hop/);
  });

  it("notices a body that disagrees with its Content-Length: a ValidationError, or without validation the outcome", async () => {
    const declares =
      (length: string, body: string[]): Application =>
      (_environ, startResponse) => {
        startResponse("200 OK", [["Content-Length", length]]);
        return (function* () {
          yield* body;
        })();
      };
    await expect(testClient(declares("3", ["abc", "def"])).get("/")).rejects.toThrow(
      /\[length\.over\]/,
    );
    await expect(testClient(declares("50", ["abc"])).get("/")).rejects.toThrow(/\[length\.short\]/);
    const long = await testClient(declares("3", ["abc", "def"]), { validate: false }).get("/");
    expect(long.text()).toBe("abc");
    expect(long.errors).toMatch(/longer than its Content-Length/);
    const short = await testClient(declares("50", ["abc"]), { validate: false }).get("/");
    expect(short.outcome).toBe("cut");
    expect(short.errors).toMatch(/response cut off/);
  });

  it("without validation, shows the same broken application as the 500 a gateway sends", async () => {
    const hopByHop: Application = (_environ, startResponse) => {
      startResponse("200 OK", [["Connection", "close"]]);
      return ["x"];
    };
    const response = await testClient(hopByHop, { validate: false }).get("/");
    expect(response.status).toBe(500);
    expect(response.outcome).toBe("failed");
    expect(response.errors).toMatch(/hop-by-hop header Connection/);
  });

  it("gives an application that throws a 500, with the error in response.errors", async () => {
    const failing: Application = () => {
      throw new Error("database unavailable");
    };
    const response = await testClient(failing).get("/");
    expect(response.status).toBe(500);
    expect(response.text()).toBe("Internal Server Error\n");
    expect(response.errors).toMatch(/database unavailable/);
  });
});
