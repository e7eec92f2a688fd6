// Exercises everything under examples/: hello.js and echo.js through `tsgi cgi`,
// and the Apache recipes in examples/deploy/apache-cgi under a real Apache httpd
// (mod_cgi with the prefork MPM, mod_cgid with the event MPM), filled in and
// started from a temporary directory.

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLEAN_PATH, REPO, TSGI_BIN, runCgi } from "./helpers/cgi.js";
import { sha256 } from "./helpers/bytes.js";

const EXAMPLES = join(REPO, "examples");
const APACHE_RECIPES = join(EXAMPLES, "deploy", "apache-cgi");

/** Parses echo.js output (`KEY=value` lines) into a map. */
function parseEcho(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) entries.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return entries;
}

describe("examples/hello.js", () => {
  it("answers Hello, world! under tsgi cgi", async () => {
    const result = await runCgi({ module: join(EXAMPLES, "hello.js") });
    expect(result.stdout.toString("latin1")).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n",
    );
    expect(result.code).toBe(0);
  });
});

describe("examples/echo.js", () => {
  it("lists the string environ keys sorted, and the body's length and SHA-256", async () => {
    const body = randomBytes(100_000);
    const result = await runCgi({
      module: join(EXAMPLES, "echo.js"),
      vars: {
        REQUEST_METHOD: "POST",
        CONTENT_LENGTH: String(body.length),
        PATH_INFO: "/p",
        QUERY_STRING: "q=1",
      },
      stdin: body,
    });
    expect(result.code).toBe(0);
    expect(result.header("Content-Type")).toBe("text/plain; charset=utf-8");
    const lines = result.response!.body.toString("utf8").trimEnd().split("\n");
    const keyLines = lines.slice(0, -2);
    expect(keyLines.map((line) => line.slice(0, line.indexOf("=")))).toEqual(
      keyLines.map((line) => line.slice(0, line.indexOf("="))).sort(),
    );
    expect(keyLines).toContain("REQUEST_METHOD=POST");
    expect(keyLines).toContain("PATH_INFO=/p");
    expect(keyLines).toContain("QUERY_STRING=q=1");
    expect(keyLines).toContain("tsgi.url_scheme=http");
    expect(lines.slice(-2)).toEqual([`body.length=${body.length}`, `body.sha256=${sha256(body)}`]);
  });

  it("writes environ values back as the bytes the server sent", async () => {
    const result = await runCgi({
      module: join(EXAMPLES, "echo.js"),
      rawVars: { PATH_INFO: Buffer.from([0x2f, 0xe9, 0x2f, 0xc3, 0xa9]) },
    });
    expect(
      result.response!.body.includes(
        Buffer.from([
          0x50, 0x41, 0x54, 0x48, 0x5f, 0x49, 0x4e, 0x46, 0x4f, 0x3d, 0x2f, 0xe9, 0x2f, 0xc3, 0xa9,
          0x0a,
        ]),
      ),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// The Apache recipes under a real Apache httpd.

const APACHE_BINARY = process.env.TSGI_APACHE2 ?? "/usr/sbin/apache2";
const APACHE_MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const haveApache = existsSync(APACHE_BINARY);
const inCi = process.env.CI === "true";
if (!haveApache && !inCi) {
  console.warn(
    `examples.test.ts: skipping the Apache tests: ${APACHE_BINARY} not found (Debian package apache2)`,
  );
}

/** Replaces every `@NAME@` placeholder; fails on one left unfilled, so a renamed placeholder cannot go unnoticed. */
function fill(template: string, values: Record<string, string>): string {
  const filled = template.replace(/@([A-Z_]+)@/g, (match, name: string) => values[name] ?? match);
  const left = /@[A-Z_]+@/.exec(filled);
  if (left) throw new Error(`placeholder ${left[0]} has no value`);
  return filled;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface ApacheServer {
  process: ChildProcess;
  root: string;
  baseUrl: string;
  errorLog(): string;
}

/**
 * Lays out a server root in a temporary directory: the ScriptAlias recipe for
 * echo.js, an .htaccess site with echo.js and hello.js, and two broken
 * wrappers for the failure messages the README promises.
 */
async function startApache(
  mpm: "prefork" | "event",
  cgiModule: "cgi" | "cgid",
): Promise<ApacheServer> {
  const root = mkdtempSync(join(tmpdir(), `tsgi-apache-${cgiModule}-`));
  // The CGI programs run as nobody when the tests run as root: they must reach these files.
  chmodSync(root, 0o755);
  const cgiDir = join(root, "cgi-bin");
  const docRoot = join(root, "htdocs");
  const site = join(docRoot, "site");
  const runDir = join(root, "run");
  for (const dir of [cgiDir, docRoot, site, runDir])
    mkdirSync(dir, { recursive: true, mode: 0o755 });

  const wrapper = readFileSync(join(APACHE_RECIPES, "app.cgi"), "utf8");
  const writeWrapper = (path: string, values: Record<string, string>) => {
    writeFileSync(path, fill(wrapper, { NODE: process.execPath, TSGI: TSGI_BIN, ...values }));
    chmodSync(path, 0o755);
  };
  writeWrapper(join(cgiDir, "app.cgi"), { APP: join(EXAMPLES, "echo.js") });
  writeWrapper(join(cgiDir, "no-node.cgi"), {
    APP: join(EXAMPLES, "echo.js"),
    NODE: "/nonexistent/bin/node",
  });
  writeWrapper(join(cgiDir, "bad-app.cgi"), {
    APP: join(REPO, "test", "fixtures", "throws-at-import.js"),
  });
  writeWrapper(join(site, "app.cgi"), { APP: join(EXAMPLES, "echo.js") });
  writeWrapper(join(site, "hello.cgi"), { APP: join(EXAMPLES, "hello.js") });
  copyFileSync(join(APACHE_RECIPES, ".htaccess"), join(site, ".htaccess"));

  const recipe = fill(readFileSync(join(APACHE_RECIPES, "tsgi-cgi.conf"), "utf8"), {
    CGI_DIR: cgiDir,
  });
  writeFileSync(join(root, "tsgi-cgi.conf"), recipe);
  writeFileSync(join(root, "mime.types"), "");

  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const modules = [
    `mpm_${mpm}_module mod_mpm_${mpm}.so`,
    "authz_core_module mod_authz_core.so",
    "alias_module mod_alias.so",
    "mime_module mod_mime.so",
    "dir_module mod_dir.so",
    `${cgiModule}_module mod_${cgiModule}.so`,
  ];
  const config = [
    `ServerRoot "${root}"`,
    `Listen 127.0.0.1:${port}`,
    "ServerName 127.0.0.1",
    `PidFile "${join(runDir, "httpd.pid")}"`,
    `DefaultRuntimeDir "${runDir}"`,
    `ErrorLog "${join(root, "error.log")}"`,
    "LogLevel warn",
    ...modules.map((module) => `LoadModule ${module.replace(" ", ` "${APACHE_MODULES}/`)}"`),
    ...(asRoot ? ["User nobody", "Group nogroup"] : []),
    ...(cgiModule === "cgid" ? [`ScriptSock "${join(runDir, "cgid.sock")}"`] : []),
    `TypesConfig "${join(root, "mime.types")}"`,
    `DocumentRoot "${docRoot}"`,
    "<Directory />",
    "    AllowOverride None",
    "    Require all denied",
    "</Directory>",
    `<Directory "${docRoot}">`,
    // Exactly what the README says the .htaccess needs.
    "    AllowOverride Options FileInfo Indexes",
    "    Require all granted",
    "</Directory>",
    `Include "${join(root, "tsgi-cgi.conf")}"`,
    // The broken wrappers, next to the recipe's app.cgi.
    `ScriptAlias /no-node "${join(cgiDir, "no-node.cgi")}"`,
    `ScriptAlias /bad-app "${join(cgiDir, "bad-app.cgi")}"`,
    "",
  ].join("\n");
  const configPath = join(root, "httpd.conf");
  writeFileSync(configPath, config);

  const child = spawn(APACHE_BINARY, ["-d", root, "-f", configPath, "-DFOREGROUND"], {
    env: { PATH: CLEAN_PATH, LANG: "C" },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: on SIGTERM Apache signals its whole group, which would otherwise include this test runner.
    detached: true,
  });
  let startupOutput = "";
  child.stdout!.on("data", (chunk: Buffer) => (startupOutput += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (startupOutput += chunk.toString("utf8")));
  const errorLog = () => {
    try {
      return readFileSync(join(root, "error.log"), "utf8");
    } catch {
      return "";
    }
  };
  const server: ApacheServer = {
    process: child,
    root,
    baseUrl: `http://127.0.0.1:${port}`,
    errorLog,
  };

  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `apache2 exited during start-up (${child.exitCode ?? child.signalCode}):\n${startupOutput}\n${errorLog()}`,
      );
    }
    try {
      await fetch(server.baseUrl + "/", { signal: AbortSignal.timeout(1_000) });
      return server;
    } catch {
      await sleep(100);
    }
  }
  await stopApache(server);
  throw new Error(`apache2 did not answer on port ${port}:\n${startupOutput}\n${errorLog()}`);
}

/** Stops the server by the PID this test started, waiting (bounded) for it to go, then removes its directory. */
async function stopApache(server: ApacheServer | undefined): Promise<void> {
  if (!server) return;
  const { process: child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const stopped = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!stopped) {
      child.kill("SIGKILL");
      await exited;
    }
  }
  rmSync(server.root, { recursive: true, force: true });
}

/** Waits (bounded) for a line to show up in the error log: Apache may log a script's stderr after answering. */
async function errorLogContains(server: ApacheServer, text: string): Promise<string> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const log = server.errorLog();
    if (log.includes(text)) return log;
    await sleep(50);
  }
  return server.errorLog();
}

const apacheSetups = [
  { mpm: "prefork", cgiModule: "cgi" },
  { mpm: "event", cgiModule: "cgid" },
] as const;

describe.skipIf(!haveApache && !inCi)(
  "examples/deploy/apache-cgi under a real Apache httpd (needs the Debian package apache2)",
  () => {
    describe.each(apacheSetups)("mpm_$mpm + mod_$cgiModule", ({ mpm, cgiModule }) => {
      let server: ApacheServer | undefined;

      beforeAll(async () => {
        if (!haveApache)
          throw new Error(
            `${APACHE_BINARY} not found: install the Debian package apache2 (required when CI=true)`,
          );
        server = await startApache(mpm, cgiModule);
      });

      afterAll(async () => {
        await stopApache(server);
      });

      function url(path: string): string {
        return server!.baseUrl + path;
      }

      it("runs echo.js through ScriptAlias with PATH_INFO and the query string", async () => {
        const response = await fetch(url("/app/users/caf%C3%A9?x=1&name=caf%C3%A9"));
        const text = await response.text();
        expect(response.status, text).toBe(200);
        expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
        const echoed = parseEcho(text);
        expect(echoed.get("REQUEST_METHOD")).toBe("GET");
        expect(echoed.get("SCRIPT_NAME")).toBe("/app");
        // Apache decodes PATH_INFO; the UTF-8 bytes come back unchanged.
        expect(echoed.get("PATH_INFO")).toBe("/users/café");
        expect(echoed.get("QUERY_STRING")).toBe("x=1&name=caf%C3%A9");
        expect(echoed.get("GATEWAY_INTERFACE")).toBe("CGI/1.1");
        expect(echoed.get("SERVER_PORT")).toBe(new URL(server!.baseUrl).port);
        expect(echoed.get("tsgi.url_scheme")).toBe("http");
        expect(echoed.get("body.length")).toBe("0");
      });

      it("runs echo.js for the bare ScriptAlias URL with an empty PATH_INFO", async () => {
        const response = await fetch(url("/app"));
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("SCRIPT_NAME")).toBe("/app");
        expect(echoed.get("PATH_INFO") ?? "").toBe("");
      });

      it("hands a 1 MiB POST body to the application intact", async () => {
        const body = randomBytes(1024 * 1024);
        const response = await fetch(url("/app/upload"), {
          method: "POST",
          body,
          headers: { "Content-Type": "application/octet-stream" },
        });
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("REQUEST_METHOD")).toBe("POST");
        expect(echoed.get("CONTENT_LENGTH")).toBe(String(body.length));
        expect(echoed.get("CONTENT_TYPE")).toBe("application/octet-stream");
        expect(echoed.get("body.length")).toBe(String(body.length));
        expect(echoed.get("body.sha256")).toBe(sha256(body));
      });

      it("runs app.cgi through the .htaccess recipe (AddHandler cgi-script)", async () => {
        const response = await fetch(url("/site/app.cgi/from/htaccess?via=addhandler"));
        const text = await response.text();
        expect(response.status, text).toBe(200);
        const echoed = parseEcho(text);
        expect(echoed.get("SCRIPT_NAME")).toBe("/site/app.cgi");
        expect(echoed.get("PATH_INFO")).toBe("/from/htaccess");
        expect(echoed.get("QUERY_STRING")).toBe("via=addhandler");
      });

      it("runs app.cgi for the directory URL through the recipe's DirectoryIndex", async () => {
        const response = await fetch(url("/site/"));
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("SCRIPT_NAME")).toBe("/site/app.cgi");
      });

      it("runs hello.js through the same wrapper in the .htaccess directory", async () => {
        const response = await fetch(url("/site/hello.cgi"));
        expect(response.status).toBe(200);
        expect(await response.text()).toBe("Hello, world!\n");
      });

      it("answers 500 and logs `tsgi: node not found at …` when the wrapper's node path is wrong", async () => {
        const response = await fetch(url("/no-node"));
        expect(response.status).toBe(500);
        await response.arrayBuffer();
        expect(
          await errorLogContains(server!, "tsgi: node not found at /nonexistent/bin/node"),
        ).toContain("tsgi: node not found at /nonexistent/bin/node");
      });

      it("answers 500 and logs why when the application module fails to load", async () => {
        const response = await fetch(url("/bad-app"));
        expect(response.status).toBe(500);
        expect(await response.text()).toContain("could not be loaded");
        expect(await errorLogContains(server!, "configuration file missing")).toMatch(
          /tsgi: cannot load application module .*throws-at-import\.js: configuration file missing/,
        );
      });
    });
  },
);
