// The framework matrix (test/frameworks-matrix.test.ts): one list of
// frameworks, one list of gateways, and a Deployment per pair that sends
// requests the way a client (or, for CGI, the web server) would. Adding a
// framework is one entry in FRAMEWORKS; a gateway, one entry in GATEWAYS.

import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { findBinary } from "./available.js";
import {
  cgiEnvironment,
  example,
  fetchHttp,
  type HttpOptions,
  type HttpResult,
} from "./frontends.js";
import { startNginxSite } from "./nginx.js";
import {
  CLEAN_PATH,
  ProcessGroup,
  REPO,
  TSGI_BIN,
  sleep,
  tempDir,
  waitForListening,
  type Proc,
} from "./processes.js";
import { startTsgiFcgi, startTsgiServer } from "./tsgi.js";

export interface Framework {
  name: string;
  /** The fixture application module. */
  app: string;
  /** A Node-style app (fromNodeHandler), which sees req.baseUrl/originalUrl; else a fetch app (fromFetchHandler). */
  node: boolean;
  /** The body of the framework's own 500 for an exception in a route (tsgi's own is "Internal Server Error\n"). */
  errorBody: RegExp;
}

const fixture = (name: string) => join(REPO, "test", "fixtures", "frameworks", name);
const EXPRESS_500 = (name: string) =>
  new RegExp(`^<!DOCTYPE html>[\\s\\S]*<pre>Error: frameworks-fixture: boom in ${name}<br>`);

export const FRAMEWORKS: Framework[] = [
  // Express's development error page shows the stack (NODE_ENV is unset in the servers' environment).
  { name: "express4", app: fixture("express4.ts"), node: true, errorBody: EXPRESS_500("express4") },
  { name: "express5", app: fixture("express5.ts"), node: true, errorBody: EXPRESS_500("express5") },
  { name: "koa", app: fixture("koa.ts"), node: true, errorBody: /^Internal Server Error$/ },
  {
    name: "fastify",
    app: fixture("fastify.ts"),
    node: true,
    errorBody: /^\{"statusCode":500,.*"message":"frameworks-fixture: boom in fastify"\}$/,
  },
  { name: "hono", app: fixture("hono.ts"), node: false, errorBody: /^Internal Server Error$/ },
];

/** A response being received: what has arrived so far, and whether it has ended. */
export interface OpenResponse {
  status: number;
  headers: IncomingHttpHeaders;
  received(): Buffer;
  readonly ended: boolean;
  /** Resolves once the body so far holds `text`; rejects after `timeoutMs` or when it ends without it. */
  waitFor(text: string, timeoutMs: number): Promise<void>;
  /** Resolves when the response has ended (or was cut off). */
  finished: Promise<void>;
  /** The client goes away: the connection (or, under CGI, the pipe from the program) is closed. */
  abandon(): void;
}

export interface Deployment {
  /** SCRIPT_NAME the application sees: "" at the root of the site. */
  mount: string;
  request(path: string, options?: HttpOptions): Promise<HttpResult>;
  open(path: string): Promise<OpenResponse>;
  /** Where the application's errors land so far. */
  log(): string;
}

/** What every gateway is started with: the process group, and the environment the apps need. */
export interface Context {
  group: ProcessGroup;
  /** FRAMEWORKS_EVENTS (the apps' side channel) and TSGI_CACHE_DIR. */
  env: Record<string, string>;
}

export interface Gateway {
  name: string;
  /** Skipped (with a warning from findBinary) when this is false. */
  available: boolean;
  start(context: Context, framework: Framework): Promise<Deployment>;
}

const nginxBinary = findBinary("nginx", "nginx");

export const PREFIX = "/shop";
export const CGI_SCRIPT = "/app.cgi";

export const GATEWAYS: Gateway[] = [
  { name: "tsgi cgi", available: true, start: (context, fw) => startCgi(context, fw) },
  {
    name: "tsgi fcgi behind nginx at /",
    available: nginxBinary !== undefined,
    start: (context, fw) => startBehindNginx(context, fw, ""),
  },
  {
    name: `tsgi fcgi behind nginx at ${PREFIX}`,
    available: nginxBinary !== undefined,
    start: (context, fw) => startBehindNginx(context, fw, PREFIX),
  },
  { name: "tsgi serve", available: true, start: (context, fw) => startServe(context, fw) },
  {
    name: `tsgi serve --workers 2 behind nginx proxy_pass at ${PREFIX}`,
    available: nginxBinary !== undefined,
    start: (context, fw) => startServeBehindProxy(context, fw),
  },
];

// ---------------------------------------------------------------------------
// HTTP gateways

/** A deployment reached over HTTP at `origin`; the paths given to it start with the mount point. */
function httpDeployment(origin: string, mount: string, log: () => string): Deployment {
  return {
    mount,
    request: (path, options) => fetchHttp(origin + path, options),
    open: (path) => openHttp(origin + path),
    log,
  };
}

/** A GET whose response is handed over as soon as its head arrives. */
function openHttp(url: string): Promise<OpenResponse> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false }, (response) => {
      const body = new Body();
      response.on("data", (chunk: Buffer) => body.add(chunk));
      response.on("end", () => body.end());
      response.on("error", () => body.end());
      response.on("close", () => body.end());
      resolve(
        body.open(response.statusCode!, response.headers, () => {
          request.destroy();
          body.end();
        }),
      );
    });
    request.setTimeout(20_000, () => request.destroy(new Error(`no answer from ${url} in time`)));
    request.on("error", reject);
    request.end();
  });
}

/** One tsgi fcgi process and one nginx per framework, serving it both at / and at PREFIX. */
const nginxSites = new Map<string, Promise<{ url: string; log: () => string }>>();

function startBehindNginx(
  context: Context,
  framework: Framework,
  mount: string,
): Promise<Deployment> {
  let site = nginxSites.get(framework.name);
  if (!site) {
    site = startNginxFor(context, framework);
    nginxSites.set(framework.name, site);
  }
  return site.then(({ url, log }) => httpDeployment(url, mount, log));
}

async function startNginxFor(context: Context, framework: Framework) {
  const tsgi = await startTsgiFcgi(context.group, {
    app: framework.app,
    listen: "unix",
    args: ["--socket-mode", "666"],
    env: context.env,
  });
  const socket = (tsgi.address as { path: string }).path;
  const location = (split: string) => `
        fastcgi_split_path_info ${split};
        include fastcgi_params;
        fastcgi_param PATH_INFO $fastcgi_path_info;
        fastcgi_pass tsgi;
        fastcgi_keep_conn on;
        fastcgi_request_buffering off;
        # Streamed responses and Server-Sent Events reach the client as written.
        fastcgi_buffering off;
        client_max_body_size 64m;`;
  const nginx = await startNginxSite(
    context.group,
    nginxBinary!,
    (listen) => `
upstream tsgi { server unix:${socket}; keepalive 4; }
server {
    listen ${listen};
    location ~ ^${PREFIX}(?:/|$) {${location(`^(${PREFIX})((?s)/.*)?$`)}
    }
    location / {${location("^()((?s)/.*)$")}
    }
}
`,
  );
  return { url: nginx.url(""), log: () => tsgi.proc.stderr + nginx.errorLog() };
}

async function startServe(context: Context, framework: Framework): Promise<Deployment> {
  const proc = context.group.spawn(
    "tsgi serve",
    process.execPath,
    [TSGI_BIN, "serve", framework.app, "--port", "0"],
    { env: { PATH: CLEAN_PATH, ...context.env } },
  );
  const match = await proc.waitForStderr(/on http:\/\/127\.0\.0\.1:(\d+)\//, 20_000);
  return httpDeployment(`http://127.0.0.1:${match[1]}`, "", () => proc.stderr);
}

/** examples/deploy/nginx-proxy: `tsgi serve --workers 2 --script-name PREFIX` on a unix socket, nginx in front. */
async function startServeBehindProxy(context: Context, framework: Framework): Promise<Deployment> {
  const socket = join(tempDir(context.group), "serve.sock");
  const tsgi = await startTsgiServer(context.group, "serve", {
    app: framework.app,
    listen: socket,
    args: ["--workers", "2", "--socket-mode", "666", "--script-name", PREFIX, "--no-access-log"],
    env: context.env,
    waitReady: false,
  });
  await waitForListening({ path: socket }, 20_000, () => tsgi.proc.running);
  const nginx = await startNginxSite(context.group, nginxBinary!, (listen) =>
    example("nginx-proxy", "tsgi-proxy.conf", { SOCKET: socket, PREFIX, LISTEN: listen }),
  );
  return httpDeployment(nginx.url(""), PREFIX, () => tsgi.proc.stderr + nginx.errorLog());
}

// ---------------------------------------------------------------------------
// CGI: a process per request, spawned the way a web server does

function startCgi(context: Context, framework: Framework): Promise<Deployment> {
  let log = "";
  const spawnFor = (target: string, options: HttpOptions, bodyLength?: number): Proc => {
    const proc = context.group.spawn(
      "tsgi cgi",
      process.execPath,
      [TSGI_BIN, "cgi", framework.app],
      {
        env: {
          PATH: CLEAN_PATH,
          ...context.env,
          ...cgiEnvironment(CGI_SCRIPT, target, { ...options, bodyLength }),
        },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    void proc.exited.then(() => (log += proc.stderr));
    return proc;
  };
  return Promise.resolve({
    mount: CGI_SCRIPT,
    log: () => log,
    request: async (path, options = {}) => {
      const body = options.body;
      if (typeof body === "function")
        throw new Error("the CGI deployment sends bodies given as bytes only");
      const proc = spawnFor(path, options, body?.length);
      proc.child.stdin!.end(body);
      const exit = await Promise.race([proc.exited, sleep(options.timeoutMs ?? 20_000)]);
      if (!exit) throw new Error(`tsgi cgi did not finish ${path} in time: ${proc.stderr}`);
      return cgiResult(proc.stdoutBytes);
    },
    open: (path) => openCgi(spawnFor(path, {})),
  });
}

function openCgi(proc: Proc): Promise<OpenResponse> {
  proc.child.stdin!.end();
  return new Promise((resolve, reject) => {
    let output = Buffer.alloc(0);
    let body: Body | undefined;
    const onData = (chunk: Buffer) => {
      if (body) return body.add(chunk);
      output = Buffer.concat([output, chunk]);
      const end = output.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = cgiResult(output.subarray(0, end + 4));
      body = new Body();
      body.add(output.subarray(end + 4));
      resolve(body.open(head.status, head.headers, () => proc.child.stdout!.destroy()));
    };
    proc.child.stdout!.on("data", onData);
    void proc.exited.then(() => {
      if (body) body.end();
      else reject(new Error(`tsgi cgi ended without a response head: ${proc.stderr}`));
    });
  });
}

/** A CGI response as an HttpResult, each Set-Cookie kept apart (node:http gives them as an array too). */
function cgiResult(output: Buffer): HttpResult {
  const end = output.indexOf("\r\n\r\n");
  if (end === -1)
    throw new Error(
      `no CGI header block in ${JSON.stringify(output.toString("latin1").slice(0, 200))}`,
    );
  const headers: IncomingHttpHeaders = {};
  let status = 200;
  for (const line of output.toString("latin1", 0, end).split("\r\n")) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "status") status = Number(value.slice(0, 3));
    else if (name === "set-cookie")
      headers["set-cookie"] = [...(headers["set-cookie"] ?? []), value];
    else headers[name] = value;
  }
  return { status, headers, body: output.subarray(end + 4) };
}

// ---------------------------------------------------------------------------

/** A response body arriving in chunks, with bounded waits on it. */
class Body {
  private chunks: Buffer[] = [];
  private done = false;
  private readonly waiters = new Set<() => void>();
  private resolveFinished!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.notify();
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.resolveFinished();
    this.notify();
  }

  open(status: number, headers: IncomingHttpHeaders, abandon: () => void): OpenResponse {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below reads this body's state.
    const body = this;
    return {
      status,
      headers,
      received: () => Buffer.concat(this.chunks),
      get ended() {
        return body.done;
      },
      waitFor: (text, timeoutMs) => this.waitFor(text, timeoutMs),
      finished: this.finished,
      abandon,
    };
  }

  private waitFor(text: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const so = Buffer.concat(this.chunks).toString("utf8");
        if (so.includes(text)) finish();
        else if (this.done)
          finish(
            new Error(`the response ended without ${JSON.stringify(text)}: ${JSON.stringify(so)}`),
          );
      };
      const timer = setTimeout(
        () => finish(new Error(`${JSON.stringify(text)} did not arrive within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      this.waiters.add(check);
      check();
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
