// `tsgi fcgi` operations options, end to end: --status-path, --ping-path,
// --request-timeout and --slow-request (run `npm run build` first).

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FastCgiClient, paramsFor, type FastCgiAddress } from "./helpers/fastcgi-client.js";
import { ProcessGroup } from "./helpers/processes.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { fileURLToPath } from "node:url";

const APP = fileURLToPath(new URL("./fixtures/operations/app.js", import.meta.url));
const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const clients: FastCgiClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy();
});

async function get(address: FastCgiAddress, target: string) {
  const client = await FastCgiClient.connect(address);
  clients.push(client);
  return { client, result: await client.request({ params: paramsFor(target), timeoutMs: 10_000 }) };
}

describe("status and ping pages", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, {
      app: APP,
      listen: "tcp",
      args: ["--status-path", "/tsgi-status", "--ping-path", "/ping"],
    });
  });

  it("answers the ping path with pong, without calling the app", async () => {
    const { result } = await get(server.address, "/ping");
    const response = result.response();
    expect(response.status).toBe("200 OK");
    expect(response.body.toString()).toBe("pong\n");
  });

  it("answers the status path with the process's figures as text", async () => {
    await get(server.address, "/counted");
    const { result } = await get(server.address, "/tsgi-status");
    const text = result.response().body.toString();
    expect(text).toMatch(/^start time: +\d{4}-\d\d-\d\dT/m);
    expect(text).toMatch(/^process manager: +single process$/m);
    const served = Number(/^requests served: +(\d+)$/m.exec(text)?.[1]);
    expect(served).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^in flight: +1$/m); // the status request itself
    expect(text).toMatch(/^listen queue: +\d+$/m); // known for TCP on Linux
    expect(text).toContain(String(server.proc.child.pid));
  });

  it("answers the status path with JSON when asked with ?json", async () => {
    const { result } = await get(server.address, "/tsgi-status?json");
    const response = result.response();
    expect(response.headers).toContainEqual(["Content-Type", "application/json"]);
    const status = JSON.parse(response.body.toString()) as {
      "process manager": string;
      "requests served": number;
      processes: { pid: number }[];
      "max in flight": unknown;
    };
    expect(status["process manager"]).toBe("single process");
    expect(status["requests served"]).toBeGreaterThanOrEqual(1);
    expect(status.processes).toHaveLength(1);
    expect(status.processes[0]?.pid).toBe(server.proc.child.pid);
    expect(typeof status["max in flight"]).toBe("number");
  });

  it("leaves every other path to the application", async () => {
    const { result } = await get(server.address, "/tsgi-status-not");
    expect(result.response().body.toString()).toBe("app answered /tsgi-status-not\n");
  });
});

describe("without --status-path", () => {
  it("sends the status path to the application like any other", async () => {
    const server = await startTsgiFcgi(group, { app: APP, listen: "tcp" });
    const { result } = await get(server.address, "/tsgi-status");
    expect(result.response().body.toString()).toBe("app answered /tsgi-status\n");
  });
});

describe("--request-timeout and --slow-request", () => {
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiFcgi(group, {
      app: APP,
      listen: "tcp",
      args: ["--request-timeout", "0.8", "--slow-request", "0.3"],
    });
  });

  it("answers 504 for an application call that never returns, and logs the request line", async () => {
    const started = Date.now();
    const { result } = await get(server.address, "/hang");
    const elapsed = Date.now() - started;
    expect(result.response().status).toBe("504 Gateway Timeout");
    expect(result.endRequest.protocolStatus).toBe(0);
    expect(elapsed).toBeGreaterThanOrEqual(700);
    expect(elapsed).toBeLessThan(5000);
    await server.proc.waitForStderr(
      /request timed out after 0\.\d s \(--request-timeout\), answered 504: GET \/hang/,
    );
  });

  it("logs a request still running past --slow-request", async () => {
    await get(server.address, "/hang");
    await server.proc.waitForStderr(/slow request: still running after 0\.3 s: GET \/hang/);
  });

  it("cuts off a response already under way, and calls the body's close()", async () => {
    const client = await FastCgiClient.connect(server.address);
    clients.push(client);
    const outcome = client.request({ params: paramsFor("/partial"), timeoutMs: 5000 }).then(
      () => "completed",
      () => "cut off",
    );
    // The web server must not take the response as whole: the connection closes with no END_REQUEST.
    await client.waitForClose(5000);
    expect(await outcome).toBe("cut off");
    const received = Buffer.concat(
      client.records.filter((record) => record.type === 6).map((record) => record.content),
    ).toString();
    expect(received).toContain("first part");
    expect(received).not.toContain("never sent");
    expect(client.records.some((record) => record.type === 3)).toBe(false);
    await server.proc.waitForStderr(/response cut off: GET \/partial/);
    await server.proc.waitForStderr(/partial body closed/);
  });

  it("keeps serving after timeouts", async () => {
    const { result } = await get(server.address, "/fine");
    expect(result.response().body.toString()).toBe("app answered /fine\n");
  });
});

describe("shutting down with a kept connection", () => {
  it("serves a request that arrives on a kept connection within 1 s of the stop, then closes it; does not run one that arrives on a connection already closed for shutdown", async () => {
    const server = await startTsgiFcgi(group, { app: APP, listen: "tcp", args: ["--grace", "5"] });
    // A web server may keep writing after our FIN: allowHalfOpen keeps its side open.
    const connect = async () => {
      const client = await FastCgiClient.connect(server.address, { allowHalfOpen: true });
      clients.push(client);
      const first = await client.request({ params: paramsFor("/counted"), keepConn: true });
      expect(first.response().body.toString()).toBe("app answered /counted\n");
      return client;
    };
    const [early, late] = [await connect(), await connect()];
    server.proc.child.kill("SIGTERM");
    await server.proc.waitForStderr(/SIGTERM: no new connections/);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const served = await early.request({ params: paramsFor("/counted"), keepConn: true });
    expect(served.response().body.toString()).toBe("app answered /counted\n");
    // That connection closed after its response, and the other one, left idle, after
    // the second: a response to either could never be delivered, so the application
    // must not be called for them.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const attempt = (client: FastCgiClient) =>
      client.request({ params: paramsFor("/counted"), keepConn: true, timeoutMs: 3000 }).then(
        () => "answered",
        () => "refused",
      );
    expect(await attempt(early)).toBe("refused");
    expect(await attempt(late)).toBe("refused");
    const exit = await server.proc.exited;
    expect(exit.code).toBe(0);
    expect(server.proc.stderr.match(/app called for \/counted/g)).toHaveLength(3);
  });
});
