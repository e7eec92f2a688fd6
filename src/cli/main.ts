// The full `tsgi` command line (commander). `tsgi cgi` normally skips this
// file: bin/tsgi.js sends it straight to the fast path in cli/cgi.ts.

import { Command, InvalidArgumentError } from "commander";
import { readFileSync } from "node:fs";

function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command("tsgi")
    .description("TypeScript Server Gateway Interface: run a TSGI application under CGI or FastCGI")
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError();

  program
    .command("cgi")
    .description(
      "serve one CGI request (environ from the environment, body on stdin, response on stdout)",
    )
    .argument(
      "<module>",
      "application module: path/to/app.js (default export or `application`) or path/to/app.js:name",
    )
    .action(async (module: string) => {
      const { main } = await import("./cgi.js");
      await main([module]);
    });

  program
    .command("fcgi")
    .description(
      "run a long-lived FastCGI server for nginx, Apache (mod_fcgid, mod_proxy_fcgi) or lighttpd",
    )
    .argument(
      "<module>",
      "application module: path/to/app.js (default export or `application`) or path/to/app.js:name",
    )
    .option(
      "-l, --listen <address>",
      "unix socket path, host:port or port (default: the listening socket on fd 0)",
    )
    .option(
      "--socket-mode <octal>",
      "permissions of a unix socket, whatever the umask",
      octal,
      0o660,
    )
    .option(
      "--allow <addresses>",
      "comma-separated peer addresses allowed over TCP (adds to FCGI_WEB_SERVER_ADDRS)",
      list,
    )
    .option(
      "--grace <seconds>",
      "how long requests in flight may finish after SIGTERM/SIGINT",
      number,
      30,
    )
    .option(
      "--concurrency <n>",
      "requests in progress at once; more get FCGI_OVERLOADED",
      integer,
      1024,
    )
    .option("--max-connections <n>", "connections open at once", integer, 1024)
    .option(
      "--max-requests-per-connection <n>",
      "requests at once on one multiplexed connection",
      integer,
      64,
    )
    .option(
      "--max-params-bytes <n>",
      "size limit of one request's FCGI_PARAMS",
      integer,
      1024 * 1024,
    )
    .option(
      "--receive-timeout <seconds>",
      "give up a request whose params or body stall this long",
      number,
      60,
    )
    .option("--no-multiplex", "one request at a time per connection (FCGI_MPXS_CONNS=0)")
    .option(
      "--stderr-to-web-server",
      "send tsgi.errors as FCGI_STDERR records instead of to stderr",
    )
    .option(
      "--multiprocess",
      "set tsgi.multiprocess: other processes serve the same app (default: with fd 0 or --workers)",
    )
    .option(
      "-w, --workers <n>",
      'worker processes sharing the socket ("auto": one per CPU); without it, one process',
      workerCount,
    )
    .option(
      "--max-requests <n>",
      "recycle a worker (or this process) after it served this many requests",
      integer,
    )
    .option(
      "--request-timeout <seconds>",
      "give up an application call running longer: 504, or the response cut off",
      number,
    )
    .option("--slow-request <seconds>", "log a request still running after this long", number)
    .option(
      "--status-path <path>",
      "answer this path with tsgi's status (plain text; JSON with ?json)",
    )
    .option("--ping-path <path>", 'answer this path with "pong"')
    .option(
      "--cache-dir <dir>",
      "where a TypeScript application is compiled to (default: $TSGI_CACHE_DIR, else node_modules/.cache/tsgi of its project)",
    )
    .action(async (module: string, options: Record<string, unknown>) => {
      const { runFcgiCommand } = await import("./fcgi.js");
      await runFcgiCommand(module, {
        listen: options.listen as string | undefined,
        socketMode: options.socketMode as number,
        allow: options.allow as string[] | undefined,
        grace: options.grace as number,
        concurrency: options.concurrency as number,
        maxConnections: options.maxConnections as number,
        maxRequestsPerConnection: options.maxRequestsPerConnection as number,
        maxParamsBytes: options.maxParamsBytes as number,
        receiveTimeout: options.receiveTimeout as number,
        multiplex: options.multiplex as boolean,
        stderrToWebServer: Boolean(options.stderrToWebServer),
        multiprocess: options.multiprocess === true ? true : undefined,
        workers: options.workers as number | "auto" | undefined,
        maxRequests: options.maxRequests as number | undefined,
        requestTimeout: options.requestTimeout as number | undefined,
        slowRequest: options.slowRequest as number | undefined,
        statusPath: options.statusPath as string | undefined,
        pingPath: options.pingPath as string | undefined,
        cacheDir: options.cacheDir as string | undefined,
      });
    });

  program
    .command("build")
    .description(
      "bundle an application, its node_modules dependencies and the CGI gateway into one file that `node <file>` runs as a CGI program",
    )
    .argument(
      "<module>",
      "application module (.ts, .js, …): path/to/app.ts (default export or `application`) or path/to/app.ts:name",
    )
    .requiredOption("-o, --out <file>", "the file to write, e.g. app.cgi.cjs")
    .addHelpText(
      "after",
      "\nRun the output from a CGI wrapper as `node <file>`. Under a low address-space limit (ulimit -v, RLimitMEM)\nstart it as `node --jitless --no-expose-wasm <file>`, as examples/deploy/apache-cgi/app.cgi does.",
    )
    .action(async (module: string, options: { out: string }) => {
      const { runBuildCommand } = await import("./build.js");
      await runBuildCommand(module, options.out);
    });

  program
    .command("serve")
    .description(
      "serve an application over HTTP for development (one process, access log on stderr)",
    )
    .argument(
      "<module>",
      "application module: path/to/app.js (default export or `application`) or path/to/app.js:name",
    )
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "TCP port (0: any free port)", port, 8000)
    .option(
      "--cache-dir <dir>",
      "where a TypeScript application is compiled to (default: $TSGI_CACHE_DIR, else node_modules/.cache/tsgi of its project)",
    )
    .option(
      "--watch",
      "restart the application when a file it loaded changes, keeping the listening socket",
    )
    .action(
      async (
        module: string,
        options: { host: string; port: number; cacheDir?: string; watch?: boolean },
      ) => {
        const { runServeCommand } = await import("../http/serve.js");
        await runServeCommand(module, {
          host: options.host,
          port: options.port,
          cacheDir: options.cacheDir,
          watch: options.watch === true,
        });
      },
    );

  return program;
}

function port(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535)
    throw new InvalidArgumentError("expected a port number from 0 to 65535");
  return Number(value);
}

function integer(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError("expected a whole number of at least 1");
  return Number(value);
}

function workerCount(value: string): number | "auto" {
  return value === "auto" ? "auto" : integer(value);
}

function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError("expected a number of at least 0");
  return parsed;
}

function octal(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value))
    throw new InvalidArgumentError("expected an octal mode such as 660");
  return parseInt(value, 8);
}

function list(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
