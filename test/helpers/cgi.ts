// Runs CGI programs the way a web server does, for the end-to-end tests: a
// real child process, an environment built from scratch, a pipe for stdin, and
// a parser for the CGI response on stdout.

import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { CLEAN_PATH, FIXTURES, REPO, TSGI_BIN } from "./processes.js";

/** What a web server typically sets for `GET /app.cgi`; tests override what they need. */
export const DEFAULT_CGI_VARS: Readonly<Record<string, string>> = {
  GATEWAY_INTERFACE: "CGI/1.1",
  REQUEST_METHOD: "GET",
  SCRIPT_NAME: "/app.cgi",
  PATH_INFO: "",
  QUERY_STRING: "",
  SERVER_NAME: "localhost",
  SERVER_PORT: "80",
  SERVER_PROTOCOL: "HTTP/1.1",
  SERVER_SOFTWARE: "tsgi-tests",
  REMOTE_ADDR: "127.0.0.1",
};

export interface CgiRequest {
  /** The program and its arguments; by default `node bin/tsgi.js cgi <module>`. */
  command?: string[];
  /** The application module for the default command. */
  module?: string;
  /** CGI variables over DEFAULT_CGI_VARS; `undefined` leaves a variable out. */
  vars?: Record<string, string | undefined>;
  /** Leaves DEFAULT_CGI_VARS out: the environment is only PATH plus `vars`. */
  bareEnvironment?: boolean;
  /**
   * Variables given as raw bytes. Node encodes a child's environment as UTF-8,
   * so these are set by a `sh` wrapper with printf octal escapes, which can
   * produce any byte except NUL (and a trailing newline is lost).
   */
  rawVars?: Record<string, Buffer>;
  /** Written to stdin. */
  stdin?: Buffer | string;
  /** Keeps stdin open after writing, as a web server may: the program must not wait for EOF. */
  keepStdinOpen?: boolean;
  /** The child is killed and the run fails after this long. */
  timeoutMs?: number;
}

export interface ParsedResponse {
  status: string;
  headers: [string, string][];
  body: Buffer;
  /** The header block as Latin-1 text, up to and including the blank line. */
  head: string;
}

export interface CgiResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** Parsed stdout, or undefined when it holds no complete header block. */
  response: ParsedResponse | undefined;
  /** The first value of a response header (case-insensitive). */
  header(name: string): string | undefined;
}

/** Starts the CGI program; the caller owns its stdio streams. */
export function spawnCgi(request: CgiRequest): ChildProcess {
  const command = request.command ?? [process.execPath, TSGI_BIN, "cgi", requireModule(request)];
  const env: Record<string, string> = { PATH: CLEAN_PATH };
  const vars = { ...(request.bareEnvironment ? {} : DEFAULT_CGI_VARS), ...request.vars };
  for (const [name, value] of Object.entries(vars)) if (value !== undefined) env[name] = value;

  let [program, ...args] = command as [string, ...string[]];
  if (request.rawVars && Object.keys(request.rawVars).length > 0) {
    const assignments = Object.entries(request.rawVars).map(([name, bytes]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad variable name ${name}`);
      if (bytes.includes(0)) throw new Error("an environment value cannot hold a NUL byte");
      const escapes = [...bytes].map((byte) => "\\" + byte.toString(8).padStart(3, "0")).join("");
      return `${name}="$(printf '${escapes}')"; export ${name};`;
    });
    args = ["-c", `${assignments.join(" ")} exec "$@"`, "sh", program, ...args];
    program = "/bin/sh";
  }
  return spawn(program, args, { cwd: REPO, env, stdio: ["pipe", "pipe", "pipe"] });
}

/** Runs one CGI request to completion and collects everything the program wrote. */
export function runCgi(request: CgiRequest): Promise<CgiResult> {
  const child = spawnCgi(request);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
  // The program may exit without reading stdin; a write into the closed pipe is expected then.
  child.stdin!.on("error", () => {});
  if (request.stdin !== undefined) child.stdin!.write(request.stdin);
  if (!request.keepStdinOpen) child.stdin!.end();

  const timeoutMs = request.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `CGI program did not finish within ${timeoutMs} ms; stderr so far:\n${Buffer.concat(stderr).toString("utf8")}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      child.stdin!.destroy();
      const output = Buffer.concat(stdout);
      const response = tryParseCgiResponse(output);
      resolve({
        code,
        signal,
        stdout: output,
        stderr: Buffer.concat(stderr).toString("utf8"),
        response,
        header: (name) =>
          response?.headers.find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1],
      });
    });
  });
}

/** Parses a CGI response (RFC 3875 section 6): header lines, a blank line, the body. */
export function parseCgiResponse(output: Buffer): ParsedResponse {
  const end = output.indexOf("\r\n\r\n");
  if (end === -1)
    throw new Error(
      `no complete CGI header block in: ${JSON.stringify(output.toString("latin1").slice(0, 200))}`,
    );
  const head = output.toString("latin1", 0, end + 4);
  const headers: [string, string][] = [];
  for (const line of head.slice(0, -4).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`malformed CGI header line ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const statusHeader = headers.find(([name]) => name === "Status");
  if (!statusHeader) throw new Error(`no Status header in ${JSON.stringify(head)}`);
  return { status: statusHeader[1], headers, body: output.subarray(end + 4), head };
}

function tryParseCgiResponse(output: Buffer): ParsedResponse | undefined {
  try {
    return parseCgiResponse(output);
  } catch {
    return undefined;
  }
}

function requireModule(request: CgiRequest): string {
  if (request.module === undefined) throw new Error("a CGI request needs `command` or `module`");
  return request.module;
}

/** The path of a fixture application. */
export function fixture(name: string): string {
  return join(FIXTURES, name);
}
