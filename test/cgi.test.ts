// End-to-end tests of the CGI gateway: `node bin/tsgi.js cgi <module>` (and a
// shebang script using runWithCgi) run as real child processes with a clean
// CGI environment and stdin, the way a web server runs them (RFC 3875).
// Needs `npm run build` first: bin/tsgi.js loads dist/cli/cgi-bundle.cjs.

import { createHash } from "node:crypto";
import { chmodSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { within } from "./helpers/engine-harness.js";
import { CLEAN_PATH, REPO, TSGI_BIN } from "./helpers/processes.js";
import { fixture, parseCgiResponse, runCgi, spawnCgi, type CgiResult } from "./helpers/cgi.js";
import { sha256 } from "./helpers/bytes.js";
import { utf8 } from "../src/environ.js";

interface InspectReport {
  environ: Record<string, string>;
  tsgi: {
    version: [number, number];
    url_scheme: string;
    multithread: boolean;
    multiprocess: boolean;
    run_once: boolean;
    inputIsReadable: boolean;
    inputIsAsyncIterable: boolean;
    errorsIsWritable: boolean;
  };
  processEnv: { hasHttpProxy: boolean };
  body: { length: number; base64: string };
}

/** Runs test/fixtures/inspect.js and returns its report of what the application saw. */
async function inspect(
  request: Parameters<typeof runCgi>[0] = {},
): Promise<{ report: InspectReport; result: CgiResult }> {
  const result = await runCgi({ module: fixture("inspect.js"), ...request });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  expect(result.response?.status).toBe("200 OK");
  return { report: JSON.parse(result.response!.body.toString("utf8")) as InspectReport, result };
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, index) => index));

describe("CGI response format", () => {
  it("writes a Status line, the headers and a blank line, byte-exact, and exits 0", async () => {
    const result = await runCgi({ module: fixture("named-exports.js") });
    expect(result.stdout.toString("latin1")).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\ndefault\n",
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
  });

  it("passes all 256 byte values through the request and the response body unchanged", async () => {
    const request = Buffer.concat([ALL_BYTES, Buffer.from(ALL_BYTES).reverse()]);
    const result = await runCgi({
      module: fixture("echo-body.js"),
      vars: {
        REQUEST_METHOD: "POST",
        CONTENT_LENGTH: String(request.length),
        CONTENT_TYPE: "application/octet-stream",
      },
      stdin: request,
    });
    expect(result.code).toBe(0);
    expect(result.response!.head).toBe(
      "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    expect(result.response!.body).toEqual(Buffer.concat([request, ALL_BYTES]));
  });
});

describe("CGI environ", () => {
  it("passes the CGI variables through and sets the tsgi keys for one request per process", async () => {
    const { report } = await inspect({
      vars: {
        SCRIPT_NAME: "/cgi-bin/app.cgi",
        PATH_INFO: "/users/7",
        QUERY_STRING: "a=1&b=%20",
        HTTP_ACCEPT: "text/html",
      },
    });
    expect(report.environ).toMatchObject({
      REQUEST_METHOD: "GET",
      SCRIPT_NAME: "/cgi-bin/app.cgi",
      PATH_INFO: "/users/7",
      QUERY_STRING: "a=1&b=%20",
      SERVER_NAME: "localhost",
      SERVER_PORT: "80",
      SERVER_PROTOCOL: "HTTP/1.1",
      GATEWAY_INTERFACE: "CGI/1.1",
      HTTP_ACCEPT: "text/html",
    });
    expect(report.tsgi).toEqual({
      version: [1, 0],
      url_scheme: "http",
      multithread: false,
      multiprocess: true,
      run_once: true,
      inputIsReadable: true,
      inputIsAsyncIterable: true,
      errorsIsWritable: true,
    });
  });

  it("fills in SCRIPT_NAME, PATH_INFO and QUERY_STRING as empty strings when the server sent none", async () => {
    const { report } = await inspect({ bareEnvironment: true, vars: { REQUEST_METHOD: "GET" } });
    expect(report.environ).toMatchObject({ SCRIPT_NAME: "", PATH_INFO: "", QUERY_STRING: "" });
  });

  it.each([
    ["on", "https"],
    ["ON", "https"],
    ["1", "https"],
    ["yes", "https"],
    ["Yes", "https"],
    ["off", "http"],
    ["", "http"],
    [undefined, "http"],
  ])("sets tsgi.url_scheme for HTTPS=%j to %s", async (https, scheme) => {
    const { report } = await inspect({ vars: { HTTPS: https } });
    expect(report.tsgi.url_scheme).toBe(scheme);
  });

  it("keeps a raw byte 0xE9 in PATH_INFO as the code point U+00E9 (Latin-1), never U+FFFD", async () => {
    const { report } = await inspect({
      rawVars: {
        PATH_INFO: Buffer.from([0x2f, 0x63, 0x61, 0x66, 0xe9]),
        HTTP_X_NAME: Buffer.from([0xff, 0xfe, 0x41]),
      },
    });
    expect(report.environ.PATH_INFO).toBe("/caf\u00e9");
    expect(report.environ.HTTP_X_NAME).toBe("\u00ff\u00feA");
  });

  it("delivers UTF-8 bytes as one code point per byte, which utf8() reads back as text", async () => {
    const { report } = await inspect({
      rawVars: {
        PATH_INFO: Buffer.from("/café", "utf8"),
        // Valid UTF-8 next to an invalid byte: each byte must still come through on its own.
        QUERY_STRING: Buffer.concat([Buffer.from("q=é&r=", "utf8"), Buffer.from([0xe9])]),
      },
    });
    expect(report.environ.PATH_INFO).toBe("/caf\u00c3\u00a9");
    expect(utf8(report.environ.PATH_INFO)).toBe("/café");
    expect(report.environ.QUERY_STRING).toBe("q=\u00c3\u00a9&r=\u00e9");
  });

  it("removes HTTP_PROXY from process.env (httpoxy) but keeps the request's Proxy header in environ", async () => {
    const { report } = await inspect({ vars: { HTTP_PROXY: "http://evil.example:8080" } });
    expect(report.processEnv.hasHttpProxy).toBe(false);
    expect(report.environ.HTTP_PROXY).toBe("http://evil.example:8080");
  });
});

describe("CGI request body", () => {
  it("reads exactly CONTENT_LENGTH bytes and finishes although stdin stays open with more", async () => {
    const { report } = await inspect({
      vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: "3" },
      stdin: "abcdefgh",
      keepStdinOpen: true,
    });
    expect(Buffer.from(report.body.base64, "base64").toString("latin1")).toBe("abc");
  });

  it("reads a body larger than one read (1 MiB + 1) exactly", async () => {
    const body = Buffer.alloc(1024 * 1024 + 1);
    for (let index = 0; index < body.length; index++) body[index] = (index * 7) & 0xff;
    const { report } = await inspect({
      vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: String(body.length) },
      stdin: Buffer.concat([body, Buffer.from("trailing bytes the gateway must not read")]),
      keepStdinOpen: true,
    });
    expect(report.body.length).toBe(body.length);
    expect(sha256(Buffer.from(report.body.base64, "base64"))).toBe(sha256(body));
  });

  it.each([
    ["unset", undefined],
    ["empty", ""],
  ])(
    "treats a CONTENT_LENGTH that is %s as an empty body and never reads stdin (stdin left open)",
    async (_what, length) => {
      const { report } = await inspect({
        vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: length },
        stdin: "unread",
        keepStdinOpen: true,
        timeoutMs: 5_000,
      });
      expect(report.body.length).toBe(0);
    },
  );

  it("ends the body where the server closed stdin when it sent less than CONTENT_LENGTH", async () => {
    const { report } = await inspect({
      vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: "100" },
      stdin: "short",
    });
    expect(Buffer.from(report.body.base64, "base64").toString("latin1")).toBe("short");
  });

  it.each(["abc", "-1", "1.5", " 3", "0x10"])(
    "answers 400 Bad Request with a log line, and exits non-zero, for CONTENT_LENGTH=%j",
    async (length) => {
      const result = await runCgi({
        module: fixture("inspect.js"),
        vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: length },
      });
      expect(result.response?.status).toBe("400 Bad Request");
      expect(result.stderr).toContain("CONTENT_LENGTH");
      expect(result.code).not.toBe(0);
    },
  );
});

describe("CGI process behaviour", () => {
  it("keeps console output off stdout: the response stays byte-exact and the lines go to stderr", async () => {
    const result = await runCgi({ module: fixture("noisy.js") });
    expect(result.stdout.toString("latin1")).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nquiet body\n",
    );
    expect(result.code).toBe(0);
    for (const line of [
      "console.log at module top level",
      "console.log during the request",
      "console.info during the request",
      "process.stdout.write during the request",
      "console.log between chunks",
    ]) {
      expect(result.stderr).toContain(`noisy: ${line}\n`);
    }
  });

  it("exits only after a 10 MiB body has drained through a slowly read pipe, complete, with code 0", async () => {
    const size = 10 * 1024 * 1024;
    const child = spawnCgi({
      module: fixture("stream-bytes.js"),
      vars: { QUERY_STRING: `bytes=${size}` },
    });
    child.stdin!.end();
    const received: Buffer[] = [];
    let sincePause = 0;
    let pauses = 0;
    child.stdout!.on("data", (chunk: Buffer) => {
      received.push(chunk);
      sincePause += chunk.length;
      if (sincePause >= 256 * 1024) {
        sincePause = 0;
        pauses++;
        child.stdout!.pause();
        setTimeout(() => child.stdout!.resume(), 20);
      }
    });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));

    expect({ code, stderr }).toMatchObject({ code: 0 });
    const response = parseCgiResponse(Buffer.concat(received));
    expect(pauses).toBeGreaterThanOrEqual(30);
    expect(response.body.length).toBe(size);
    expect(stderr).toContain(`sent sha256=${sha256(response.body)}`);
  });

  it("answers 500, logs the stack only to stderr, and exits non-zero when the application throws before output", async () => {
    const result = await runCgi({ module: fixture("failing.js") + ":beforeOutput" });
    expect(result.response?.status).toBe("500 Internal Server Error");
    expect(result.header("Content-Type")).toBe("text/plain; charset=utf-8");
    expect(Number(result.header("Content-Length"))).toBe(result.response!.body.length);
    expect(result.stdout.toString("latin1")).not.toContain("secret detail");
    expect(result.stderr).toContain("failing before output: secret detail");
    expect(result.stderr).toMatch(/\n\s+at beforeOutput /);
    expect(result.code).not.toBe(0);
  });

  it("keeps the output already sent, logs, and exits non-zero when the application throws after output", async () => {
    const result = await runCgi({ module: fixture("failing.js") + ":afterOutput" });
    expect(result.stdout.toString("latin1")).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial output\n",
    );
    expect(result.stderr).toContain("failing after output");
    expect(result.code).not.toBe(0);
  });

  it("never emits a header with CR LF in it: 500 instead", async () => {
    const result = await runCgi({ module: fixture("failing.js") + ":badHeader" });
    expect(result.response?.status).toBe("500 Internal Server Error");
    expect(result.stdout.toString("latin1")).not.toContain("Injected");
    expect(result.code).not.toBe(0);
  });

  it("prints one clear line and exits non-zero outside a CGI environment (no REQUEST_METHOD)", async () => {
    const result = await runCgi({ module: fixture("inspect.js"), bareEnvironment: true });
    expect(result.stdout.length).toBe(0);
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/^tsgi: not a CGI environment \(REQUEST_METHOD is not set\)/);
    expect(result.code).not.toBe(0);
  });

  it("[slow: 1 GiB through a pipe, a few seconds] streams a generated body in constant memory", async () => {
    const size = 1024 * 1024 * 1024;
    const memoryLimitKb = 160 * 1024;
    const child = spawnCgi({
      module: fixture("stream-bytes.js"),
      vars: { QUERY_STRING: `bytes=${size}` },
    });
    child.stdin!.end();

    let peakRssKb = 0;
    const sampler = setInterval(() => {
      try {
        const rss = /VmRSS:\s*(\d+) kB/.exec(
          readFileSync(`/proc/${child.pid}/status`, "latin1"),
        )?.[1];
        if (rss) peakRssKb = Math.max(peakRssKb, Number(rss));
      } catch {
        // The child has exited between samples.
      }
    }, 50);

    const hash = createHash("sha256");
    let head = Buffer.alloc(0);
    let headEnd = -1;
    let bodyBytes = 0;
    child.stdout!.on("data", (chunk: Buffer) => {
      if (headEnd === -1) {
        head = Buffer.concat([head, chunk]);
        headEnd = head.indexOf("\r\n\r\n");
        if (headEnd === -1) return;
        chunk = head.subarray(headEnd + 4);
        head = head.subarray(0, headEnd + 4);
      }
      hash.update(chunk);
      bodyBytes += chunk.length;
    });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    clearInterval(sampler);

    expect(code).toBe(0);
    expect(head.toString("latin1")).toBe(
      `Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`,
    );
    expect(bodyBytes).toBe(size);
    expect(stderr).toContain(`sent sha256=${hash.digest("hex")}`);
    const peakKb = Number(/VmHWM=(\d+) kB/.exec(stderr)?.[1]);
    expect(peakKb).toBeGreaterThan(0);
    expect(peakKb).toBeLessThan(memoryLimitKb);
    expect(peakRssKb).toBeLessThan(memoryLimitKb);
  }, 60_000);
});

describe("tsgi cgi <module>", () => {
  it.each([
    ["a default export", "named-exports.js", "default\n"],
    [
      "an `application` export when there is no default",
      "application-export.js",
      "application export\n",
    ],
    ["the export named after the colon", "named-exports.js:other", "other\n"],
    ["`application` by name", "named-exports.js:application", "application\n"],
    ["a CommonJS module that exports a function", "commonjs-function.cjs", "commonjs function\n"],
    ["a CommonJS module with exports.application", "commonjs-named.cjs", "commonjs application\n"],
    ["an ES module with top-level await", "top-level-await.js", "top-level await\n"],
  ])("loads %s", async (_what, spec, body) => {
    const result = await runCgi({ module: fixture(spec) });
    expect(result.stderr).toBe("");
    expect(result.response?.status).toBe("200 OK");
    expect(result.response?.body.toString("utf8")).toBe(body);
    expect(result.code).toBe(0);
  });

  it("resolves a module path relative to the working directory", async () => {
    const result = await runCgi({ module: "test/fixtures/application-export.js" });
    expect(result.response?.body.toString("utf8")).toBe("application export\n");
  });

  it.each([
    ["a missing file", "does-not-exist.js", /cannot load application module .*does-not-exist\.js/],
    ["a syntax error", "syntax-error.js", /cannot load application module .*syntax-error\.js: \S/],
    [
      "a syntax error in CommonJS, with its line",
      "syntax-error.cjs",
      /syntax-error\.cjs: .+ \(.*syntax-error\.cjs:4\)$/,
    ],
    [
      "a module that throws at import",
      "throws-at-import.js",
      /cannot load application module .*: configuration file missing/,
    ],
    [
      "a module without an application",
      "no-application.js",
      /must provide the application as a default export or an export named "application"; it has none/,
    ],
    ["a default export that is not a function", "not-a-function.js", /not a function/],
    [
      "a missing named export",
      "named-exports.js:nowhere",
      /an export named "nowhere"; it has none/,
    ],
    [
      "a named export that is not a function",
      "named-exports.js:notAFunction",
      /it is number, not a function/,
    ],
  ])(
    "answers 500, prints one clear line on stderr and exits non-zero for %s",
    async (_what, spec, message) => {
      const result = await runCgi({ module: fixture(spec) });
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^tsgi: /);
      expect(lines[0]).toMatch(message);
      expect(result.response?.status).toBe("500 Internal Server Error");
      expect(result.header("Content-Type")).toBe("text/plain; charset=utf-8");
      expect(result.code).not.toBe(0);
    },
  );

  it("runs an executable shebang script that imports runWithCgi from tsgi", async () => {
    const script = fixture("shebang-app.js");
    chmodSync(script, 0o755); // in case the checkout dropped the executable bit
    const result = await runCgi({
      command: [script],
      vars: { REQUEST_METHOD: "POST", PATH_INFO: "/from/shebang" },
    });
    expect(result.stderr).toBe("");
    const body = "shebang script: POST /from/shebang run_once=true\n";
    expect(result.stdout.toString("latin1")).toBe(
      `Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(result.code).toBe(0);
  });

  it('runs a shebang script that imports runWithCgi from "tsgi/cgi"', async () => {
    const script = fixture("shebang-cgi-only.js");
    chmodSync(script, 0o755);
    const result = await runCgi({
      command: [script],
      vars: { REQUEST_METHOD: "GET", PATH_INFO: "/cgi-only" },
    });
    expect(result.stderr).toBe("");
    expect(result.response?.body.toString()).toBe("shebang script: GET /cgi-only run_once=true\n");
    expect(result.code).toBe(0);
  });

  it("answers --help and --version", async () => {
    const packageVersion = (
      JSON.parse(readFileSync(`${REPO}/package.json`, "utf8")) as { version: string }
    ).version;
    const version = await runCgi({
      command: [process.execPath, TSGI_BIN, "--version"],
      bareEnvironment: true,
    });
    expect(version.code).toBe(0);
    expect(version.stdout.toString("utf8").trim()).toBe(packageVersion);

    const help = await runCgi({
      command: [process.execPath, TSGI_BIN, "--help"],
      bareEnvironment: true,
    });
    expect(help.code).toBe(0);
    expect(help.stdout.toString("utf8")).toMatch(/Usage: tsgi/);
    expect(help.stdout.toString("utf8")).toContain("cgi");

    const cgiHelp = await runCgi({
      command: [process.execPath, TSGI_BIN, "cgi", "--help"],
      bareEnvironment: true,
    });
    expect(cgiHelp.code).toBe(0);
    expect(cgiHelp.stderr).toContain("usage: tsgi cgi <module>");
  });

  it("prints usage and exits non-zero without a module", async () => {
    const result = await runCgi({ command: [process.execPath, TSGI_BIN, "cgi"] });
    expect(result.stderr).toContain("usage: tsgi cgi <module>");
    expect(result.code).not.toBe(0);
  });
});

describe("the process ends with its request (run_once)", () => {
  /** Spawns the lifetime fixture for `target` and times stdout's and stderr's end-of-file and the exit. */
  async function timed(path: string, query = "", stdin?: Buffer) {
    const child = spawnCgi({
      module: fixture("cgi-lifetime.js"),
      vars: stdin
        ? {
            REQUEST_METHOD: "POST",
            PATH_INFO: path,
            QUERY_STRING: query,
            CONTENT_LENGTH: String(stdin.length),
          }
        : { PATH_INFO: path, QUERY_STRING: query },
    });
    const started = Date.now();
    const stdinError = new Promise<Error | undefined>((resolve) => {
      child.stdin!.on("error", resolve);
      child.stdin!.on("finish", () => resolve(undefined));
    });
    child.stdin!.end(stdin);
    const collect = (stream: NodeJS.ReadableStream) =>
      new Promise<{ text: string; at: number }>((resolve) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () =>
          resolve({ text: Buffer.concat(chunks).toString("utf8"), at: Date.now() - started }),
        );
      });
    const [stdout, stderr, exit] = await within(
      Promise.all([
        collect(child.stdout!),
        collect(child.stderr!),
        new Promise<{ code: number | null; at: number }>((resolve) =>
          child.on("exit", (code) => resolve({ code, at: Date.now() - started })),
        ),
      ]),
      8000,
      `the CGI process for ${path}`,
    ).finally(() => child.kill("SIGKILL"));
    return { stdout, stderr, exit, stdinError: await stdinError };
  }

  it("ends at once after the response, though the application left a 5 s timer: stdout, stderr and the process", async () => {
    const { stdout, stderr, exit } = await timed("/timer");
    expect(stdout.text).toMatch(/\r\n\r\ndone\n$/);
    expect(exit.code).toBe(0);
    // Apache's mod_cgi waits for stderr, mod_cgid for the socket, not only for stdout.
    expect(stderr.at).toBeLessThan(3000);
    expect(exit.at).toBeLessThan(3000);
  });

  it("waits for a close() that takes a moment before ending", async () => {
    const { stdout, stderr, exit } = await timed("/slow-close", "ms=300");
    expect(stdout.text).toMatch(/done\n$/);
    expect(stderr.text).toContain("close() finished");
    expect(exit.code).toBe(0);
  });

  it("ends after the grace period when close() never settles", async () => {
    const { stdout, exit } = await timed("/never-close");
    expect(stdout.text).toMatch(/done\n$/);
    expect(exit.code).toBe(0);
    expect(exit.at).toBeLessThan(4000);
  });

  it("reads and drops a body the application left unread, so the server's write of it never fails", async () => {
    // Far more than a pipe holds: without the drain the process would end with most of it unwritten.
    const body = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const { stdout, exit, stdinError } = await timed("/ignore-body", "", body);
    expect(stdout.text).toMatch(/not read\n$/);
    expect(exit.code).toBe(0);
    expect(stdinError).toBeUndefined();
  });

  it("leaves a cut-off response's unread body unread, exits 1 and logs the cut", async () => {
    const { stdout, stderr, exit } = await timed("/cut", "", Buffer.alloc(1024 * 1024, 0x61));
    expect(stdout.text).toMatch(/first chunk\n$/);
    expect(exit.code).toBe(1);
    expect(stderr.text).toMatch(
      /\[tsgi\] POST \/app\.cgi\/cut: error in application: Error: cut on purpose/,
    );
    expect(stderr.text).toMatch(/response cut off: the error came after the headers were sent/);
  });
});

describe("a chunked upload: no CONTENT_LENGTH, HTTP_TRANSFER_ENCODING set", () => {
  it("reads the body from stdin to end-of-file", async () => {
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, index) => (index * 7) % 256));
    const result = await runCgi({
      module: fixture("echo-body.js"),
      vars: {
        REQUEST_METHOD: "POST",
        HTTP_TRANSFER_ENCODING: "chunked",
        CONTENT_TYPE: "application/octet-stream",
      },
      stdin: body,
    });
    expect(result.code).toBe(0);
    expect(result.response!.body.subarray(0, body.length)).toEqual(body);
    expect(result.response!.body.length).toBe(body.length + 256);
  });

  it("prefers CONTENT_LENGTH when both are given, and never reads past it", async () => {
    const result = await runCgi({
      module: fixture("echo-body.js"),
      vars: { REQUEST_METHOD: "POST", HTTP_TRANSFER_ENCODING: "chunked", CONTENT_LENGTH: "3" },
      stdin: "abcdef",
      keepStdinOpen: true,
    });
    expect(result.code).toBe(0);
    expect(result.response!.body.subarray(0, 3).toString()).toBe("abc");
    expect(result.response!.body.length).toBe(3 + 256);
  });
});

// Keeps the clean environment honest: the tests above must not depend on the test runner's variables.
describe("test harness", () => {
  it("gives the child only PATH and the CGI variables", async () => {
    const { report } = await inspect();
    const names = Object.keys(report.environ).filter((name) => !name.startsWith("tsgi."));
    expect(names.sort()).toEqual(
      [
        "PATH",
        "GATEWAY_INTERFACE",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "REMOTE_ADDR",
      ].sort(),
    );
    expect(report.environ.PATH).toBe(CLEAN_PATH);
  });
});
