// What the front-end tests (test/frontends-*.test.ts) share: the deployment
// examples filled in from examples/deploy/, files and directories the web
// servers need, an HTTP client, and the matrix of requests every web server
// in front of tsgi must get right. The servers themselves are started by
// apache.ts, lighttpd.ts and nginx.js.

import { createHash, randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { userInfo } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { parseCgiResponse } from "./cgi.js";
import { REPO, alive, isRoot, sleep } from "./processes.js";
import { sha256, streamPattern } from "./bytes.js";
import { fill } from "./templates.js";

export const DEPLOY = join(REPO, "examples", "deploy");
export const MATRIX_APP = join(REPO, "test", "fixtures", "frontends", "matrix-app.js");
/** A module that throws while it is imported: what "the application fails to load" looks like. */
export const BROKEN_APP = join(REPO, "test", "fixtures", "throws-at-import.js");
export const BROKEN_APP_LINE =
  /tsgi: cannot load application module \S*throws-at-import\.js: configuration file missing/;

/** The unprivileged user and group the web servers drop to when the tests run as root. */
export const WEB_USER = "nobody";
export const WEB_GROUP = "nogroup";

// ---------------------------------------------------------------------------
// Files the web servers need

/** An example file from examples/deploy/<folder>/, placeholders filled. */
export function example(folder: string, file: string, values: Record<string, string> = {}): string {
  return fill(readFileSync(join(DEPLOY, folder, file), "utf8"), values);
}

/** Writes `text` to `path` with `mode`, whatever the umask. */
export function writeFile(path: string, text: string, mode = 0o644): string {
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

/** A directory the unprivileged web server user may write to (its logs, its sockets). */
export function serverWritableDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o755 });
  if (isRoot)
    chownSync(path, numericId("/etc/passwd", WEB_USER), numericId("/etc/group", WEB_GROUP));
  return path;
}

/** The user and group a process started by the tests ends up as: the web servers' when we are root, else our own. */
export function effectiveUserAndGroup(): { user: string; group: string } {
  if (isRoot) return { user: WEB_USER, group: WEB_GROUP };
  const user = userInfo().username;
  const gidNow = process.getgid?.() ?? -1;
  const line = readFileSync("/etc/group", "utf8")
    .split("\n")
    .find((entry) => entry.split(":")[2] === String(gidNow));
  return { user, group: line?.split(":")[0] ?? user };
}

/** The numeric id of a user (/etc/passwd) or group (/etc/group), by name. */
function numericId(file: "/etc/passwd" | "/etc/group", name: string): number {
  const line = readFileSync(file, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in ${file}`);
  return Number(line.split(":")[2]);
}

/** Reads a file that may not exist yet (a log) as text. */
export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Resolves with the text once `read()` matches `pattern`; a web server may log after it answered. Bounded. */
export async function waitForLog(
  read: () => string,
  pattern: RegExp | string,
  timeoutMs = 5000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = read();
    if (typeof pattern === "string" ? text.includes(pattern) : pattern.test(text)) return text;
    if (Date.now() > deadline)
      throw new Error(`the log did not show ${pattern} within ${timeoutMs} ms; it holds:\n${text}`);
    await sleep(50);
  }
}

/** Peak resident memory (VmHWM) of a running process in KiB, from /proc. */
export function peakRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const match = /VmHWM:\s*(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(match[1]);
}

/** Stops a process this test started but does not own a handle to (it forked away): SIGTERM, then SIGKILL. Bounded. */
export async function stopPid(pid: number, graceMs = 3000): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // Gone already.
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(25);
  if (alive(pid)) signal("SIGKILL");
}

// ---------------------------------------------------------------------------
// HTTP

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  /** The request body: bytes, or chunks produced on demand (sent with backpressure). */
  body?: Buffer | (() => AsyncIterable<Buffer>);
  agent?: Agent | false;
  timeoutMs?: number;
}

/**
 * `clients` loops, each sending `each` POSTs of a small body to `url` one after
 * another (a load that keeps a proxy's upstream connections busy): how many got
 * a 200, and what came instead for the others (status and the start of the body,
 * or the connection error).
 */
export async function postLoad(
  url: string,
  clients: number,
  each: number,
): Promise<{ served: number; failures: string[] }> {
  const failures: string[] = [];
  let served = 0;
  const body = Buffer.from("load");
  const loop = async () => {
    for (let n = 0; n < each; n++) {
      const result = await fetchHttp(url, { method: "POST", body, timeoutMs: 10_000 }).catch(
        (error: Error) => ({ status: 0, body: Buffer.from(error.message) }),
      );
      if (result.status === 200) served++;
      else failures.push(`${result.status} ${result.body.toString("utf8").slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  return { served, failures };
}

/** One HTTP request, its whole response collected. Rejects on a connection error or after `timeoutMs`. */
export function fetchHttp(url: string, options: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: options.method ?? "GET", headers: options.headers, agent: options.agent ?? false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          // A response cut off mid-body ends too; "aborted" tells it apart.
          if (response.complete)
            resolve({
              status: response.statusCode!,
              headers: response.headers,
              body: Buffer.concat(chunks),
            });
          else
            reject(
              new Error(
                `the response from ${url} was cut off after ${Buffer.concat(chunks).length} body bytes`,
              ),
            );
        });
        response.on("error", reject);
      },
    );
    request.setTimeout(options.timeoutMs ?? 20_000, () =>
      request.destroy(new Error(`no answer from ${url} in time`)),
    );
    request.on("error", reject);
    const body = options.body;
    if (body === undefined || Buffer.isBuffer(body)) {
      request.end(body);
      return;
    }
    void (async () => {
      try {
        for await (const chunk of body()) {
          if (!request.write(chunk)) await new Promise((done) => request.once("drain", done));
        }
        request.end();
      } catch (error) {
        request.destroy(error as Error);
      }
    })();
  });
}

// ---------------------------------------------------------------------------
// The matrix: what every front end must get right

export interface MatrixCell {
  /** Sends a request for `path` (starting with `mount`) through the front end. */
  request(path: string, options?: HttpOptions): Promise<HttpResult>;
  /** The URL path the application is mounted at: the SCRIPT_NAME it must see ("" for the whole site). */
  mount: string;
  /** FastCGI: one long-lived process whose state persists. CGI: a process per request. */
  persistent: boolean;
  /** Where the application's errors land: the server's error log, or tsgi's stderr. */
  errorLog(): string;
  /** Whether the front end passes the Authorization header on (Apache does not unless CGIPassAuth On). Default true. */
  passesAuthorization?: boolean;
}

/** The GET every cell sends: PATH_INFO with an encoded space and UTF-8, and a query string. */
export const MATRIX_GET = "/env/sub%20dir/caf%C3%A9?x=1&y=%C3%A9";
/** The PATH_INFO the application must see for it: decoded, one Latin-1 character per byte. */
export const MATRIX_PATH_INFO = "/env/sub dir/" + Buffer.from("café", "utf8").toString("latin1");

/** GETs `target` and returns the environ the matrix app reports (also from a 404, which reports it too). */
export async function environFor(
  cell: Pick<MatrixCell, "request">,
  target: string,
  headers?: Record<string, string>,
): Promise<Record<string, string>> {
  const result = await cell.request(target, { headers });
  const text = result.body.toString("utf8");
  let report: { environ?: Record<string, string> };
  try {
    report = JSON.parse(text) as typeof report;
  } catch {
    throw new Error(`not the matrix app's JSON (status ${result.status}): ${text.slice(0, 500)}`);
  }
  if (!report.environ) throw new Error(`no environ in ${text.slice(0, 500)}`);
  return report.environ;
}

/**
 * Registers the matrix tests for one cell inside the current describe();
 * `cell` is called when they run (after beforeAll started the servers).
 */
export function matrixTests(cell: () => MatrixCell): void {
  it("GET with PATH_INFO and a query string: SCRIPT_NAME, PATH_INFO, QUERY_STRING and REQUEST_URI are right", async () => {
    const { mount, passesAuthorization = true } = cell();
    const environ = await environFor(cell(), mount + MATRIX_GET, {
      Authorization: "Bearer matrix",
    });
    expect({
      REQUEST_METHOD: environ.REQUEST_METHOD,
      SCRIPT_NAME: environ.SCRIPT_NAME,
      PATH_INFO: environ.PATH_INFO,
      QUERY_STRING: environ.QUERY_STRING,
      REQUEST_URI: environ.REQUEST_URI,
      HTTP_AUTHORIZATION: environ.HTTP_AUTHORIZATION,
    }).toEqual({
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: mount,
      PATH_INFO: MATRIX_PATH_INFO,
      QUERY_STRING: "x=1&y=%C3%A9",
      REQUEST_URI: mount + MATRIX_GET,
      HTTP_AUTHORIZATION: passesAuthorization ? "Bearer matrix" : undefined,
    });
  });

  it("POST: the application gets the whole body (it answers the body's SHA-256)", async () => {
    const body = randomBytes(1024 * 1024 + 13);
    const result = await cell().request(cell().mount + "/sha256", {
      method: "POST",
      body,
      headers: { "Content-Type": "application/octet-stream" },
    });
    expect(result.status, result.body.toString("utf8").slice(0, 300)).toBe(200);
    expect(JSON.parse(result.body.toString("utf8"))).toMatchObject({
      length: body.length,
      sha256: sha256(body),
    });
  });

  it("a non-200 status with a custom header passes through", async () => {
    const result = await cell().request(cell().mount + "/status");
    expect(result.status).toBe(418);
    expect(result.headers["x-matrix"]).toBe("custom; v=1");
    expect(result.body.toString("utf8")).toBe("short and stout\n");
  });

  it("a 10 MiB streamed response (no Content-Length) arrives byte-exact", async () => {
    const size = 10 * 1024 * 1024;
    const result = await cell().request(cell().mount + `/stream?bytes=${size}`);
    expect(result.status).toBe(200);
    expect(result.body.length).toBe(size);
    expect(sha256(result.body)).toBe(sha256(streamPattern(size)));
  });

  it("an application exception gives a 500, the error is logged, and the next request is served", async () => {
    // Counted, not just found: several cells may share one error log.
    const logged = () => cell().errorLog().split("matrix-app: boom on purpose").length - 1;
    const before = logged();
    const failed = await cell().request(cell().mount + "/throw");
    expect(failed.status).toBe(500);
    const deadline = Date.now() + 5000;
    while (logged() === before && Date.now() < deadline) await sleep(50);
    expect(logged(), `the error log holds:\n${cell().errorLog().slice(-2000)}`).toBeGreaterThan(
      before,
    );
    const next = await cell().request(cell().mount + "/status");
    expect(next.status).toBe(418);
  });

  it("state: kept between requests under FastCGI, fresh for each request under CGI", async () => {
    const seen: { pid: number; count: number }[] = [];
    for (let index = 0; index < 4; index++) {
      const result = await cell().request(cell().mount + "/counter");
      expect(result.status).toBe(200);
      seen.push(JSON.parse(result.body.toString("utf8")) as { pid: number; count: number });
    }
    if (!cell().persistent) {
      expect(seen.map((entry) => entry.count)).toEqual([1, 1, 1, 1]);
      expect(new Set(seen.map((entry) => entry.pid)).size).toBe(4);
      return;
    }
    // Several processes may share the work (mod_fcgid, an upstream of two): each one's counter must grow by one per request it served.
    const byPid = new Map<number, number[]>();
    for (const { pid, count } of seen) byPid.set(pid, [...(byPid.get(pid) ?? []), count]);
    expect(Math.max(...[...byPid.values()].map((counts) => counts.length))).toBeGreaterThanOrEqual(
      2,
    );
    for (const counts of byPid.values()) {
      for (let index = 1; index < counts.length; index++)
        expect(counts[index]).toBe(counts[index - 1] + 1);
    }
  });
}

/** A matrix cell for a front end reached over HTTP at `baseUrl`. */
export function httpCell(baseUrl: () => string, fields: Omit<MatrixCell, "request">): MatrixCell {
  return { ...fields, request: (path, options) => fetchHttp(baseUrl() + path, options) };
}

// ---------------------------------------------------------------------------
// CGI environments for cgi-fcgi

/** What a web server would put in a CGI environment for `target` under `mount` (Apache's values). */
export function cgiEnvironment(
  mount: string,
  target: string,
  options: HttpOptions & { bodyLength?: number },
): Record<string, string> {
  const [path, query = ""] = target.split("?", 2) as [string, string?];
  // Node writes a child's environment as UTF-8: the decoded text becomes the URL's bytes again.
  const decoded = decodeURIComponent(path.slice(mount.length));
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_PROTOCOL: "HTTP/1.1",
    SERVER_SOFTWARE: "tsgi-tests",
    SERVER_NAME: "localhost",
    SERVER_PORT: "80",
    REMOTE_ADDR: "127.0.0.1",
    REQUEST_METHOD: options.method ?? "GET",
    SCRIPT_NAME: mount,
    PATH_INFO: decoded,
    QUERY_STRING: query,
    REQUEST_URI: target,
  };
  if (options.bodyLength !== undefined) env.CONTENT_LENGTH = String(options.bodyLength);
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const key = name.toUpperCase().replace(/-/g, "_");
    env[key === "CONTENT_TYPE" ? key : `HTTP_${key}`] = value;
  }
  return env;
}

/** Parses a CGI response (cgi-fcgi relays the FastCGI server's) into an HttpResult. */
export function cgiToHttp(stdout: Buffer): HttpResult {
  const parsed = parseCgiResponse(stdout);
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of parsed.headers)
    if (name !== "Status") headers[name.toLowerCase()] = value;
  return { status: Number(parsed.status.slice(0, 3)), headers, body: parsed.body };
}

// ---------------------------------------------------------------------------
// Streamed responses

export interface TimedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** ms from sending the request to the first body bytes, and to the end of the response. */
  firstChunkMs: number;
  endMs: number;
}

/** GETs `url` and notes when the first body bytes and the end arrive (the matrix app's /sse?wait=ms). */
export function timedGet(url: string, timeoutMs = 20_000): Promise<TimedResponse> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const request = httpRequest(url, { agent: false }, (response) => {
      let firstChunkMs = -1;
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => {
        if (firstChunkMs < 0) firstChunkMs = Date.now() - start;
        chunks.push(chunk);
      });
      response.on("end", () =>
        resolve({
          status: response.statusCode!,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          firstChunkMs,
          endMs: Date.now() - start,
        }),
      );
      response.on("error", reject);
    });
    request.setTimeout(timeoutMs, () =>
      request.destroy(new Error(`no answer from ${url} in time`)),
    );
    request.on("error", reject);
    request.end();
  });
}

/** The SSE check every front end with buffering off must pass: the first event comes well before the second. */
export async function expectFirstEventEarly(url: string, waitMs = 1500): Promise<TimedResponse> {
  const result = await timedGet(`${url}?wait=${waitMs}`);
  expect(result.status).toBe(200);
  expect(result.body).toBe("data: first\n\ndata: second\n\n");
  expect(result.endMs).toBeGreaterThanOrEqual(waitMs - 50);
  expect(
    result.firstChunkMs,
    `the first event came after ${result.firstChunkMs} ms, the end after ${result.endMs} ms`,
  ).toBeLessThan(waitMs / 2);
  return result;
}

/** Chunks of `total` random bytes produced on demand, and the SHA-256 of what was sent (read it after the request). */
export function randomUpload(
  total: number,
  chunkSize = 1024 * 1024,
): { body: () => AsyncIterable<Buffer>; sha256: () => string } {
  const hash = createHash("sha256");
  return {
    body: async function* () {
      for (let sent = 0; sent < total; sent += chunkSize) {
        const chunk = randomBytes(Math.min(chunkSize, total - sent));
        hash.update(chunk);
        yield chunk;
      }
    },
    sha256: () => hash.digest("hex"),
  };
}

/**
 * POSTs `total` random bytes, chunked (no Content-Length), to a matrix app's
 * /sha256 at `url`; expects a 200 and returns what the app reports beside what
 * it should: the length and SHA-256 sent.
 */
export async function postChunkedUpload(
  url: string,
  total: number,
): Promise<{ reported: Record<string, unknown>; sent: { length: number; sha256: string } }> {
  const upload = randomUpload(total, 256 * 1024);
  const result = await fetchHttp(url, {
    method: "POST",
    body: upload.body,
    headers: { "Content-Type": "application/octet-stream" },
  });
  expect(result.status, result.body.toString("utf8")).toBe(200);
  const reported = JSON.parse(result.body.toString("utf8")) as Record<string, unknown>;
  return { reported, sent: { length: total, sha256: upload.sha256() } };
}
