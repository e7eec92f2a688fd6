// The full `tsgi` command line (commander, with its typed options: each
// option's type flows from its definition into the command it reaches).
// `tsgi cgi` normally skips this file: bin/tsgi.js sends it straight to the
// fast path in cli/cgi.ts.

import { Command, Option, type OptionValues } from "@commander-js/extra-typings";
import { readFileSync } from "node:fs";
import { integer, list, number, octal, port, workerCount } from "./option-values.js";

/** Any command, whatever its arguments and options so far: the option groups below add to it. */
type AnyCommand<A extends unknown[], O extends OptionValues> = Command<A, O, OptionValues>;

const MODULE_HELP =
  "application module: path/to/app.js (default export or `application`) or path/to/app.js:name";

function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

export function buildProgram() {
  const program = new Command("tsgi")
    .description(
      "TypeScript Server Gateway Interface: run a TSGI application under CGI, FastCGI, SCGI, uwsgi or HTTP",
    )
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError();
  addCgiCommand(program);
  addFcgiCommand(program);
  addRequestGatewayCommand(program, "scgi");
  addRequestGatewayCommand(program, "uwsgi");
  addBuildCommand(program);
  addServeCommand(program);
  return program;
}

function addCgiCommand(program: Command): void {
  program
    .command("cgi")
    .description(
      "serve one CGI request (environ from the environment, body on stdin, response on stdout)",
    )
    .argument("<module>", MODULE_HELP)
    .action(async (module) => {
      const { main } = await import("./cgi.js");
      await main([module]);
    });
}

function addFcgiCommand(program: Command): void {
  const command = program
    .command("fcgi")
    .description(
      "run a long-lived FastCGI server for nginx, Apache (mod_fcgid, mod_proxy_fcgi) or lighttpd",
    )
    .argument("<module>", MODULE_HELP);
  serverCommandOptions(fastcgiOptions(command)).action(async (module, options) => {
    const { runFcgiCommand } = await import("./fcgi.js");
    await runFcgiCommand(module, options);
  });
}

const REQUEST_GATEWAYS = {
  scgi: "run a long-lived SCGI server for nginx (scgi_pass), Apache (mod_proxy_scgi) or lighttpd (mod_scgi)",
  uwsgi:
    "run a long-lived uwsgi-protocol server for nginx (uwsgi_pass), Apache (mod_proxy_uwsgi) or lighttpd",
};

/** `tsgi scgi` and `tsgi uwsgi`: the protocols of one request per connection. */
function addRequestGatewayCommand(program: Command, name: keyof typeof REQUEST_GATEWAYS): void {
  const command = program
    .command(name)
    .description(REQUEST_GATEWAYS[name])
    .argument("<module>", MODULE_HELP);
  serverCommandOptions(headerLimitOption(command)).action(async (module, options) => {
    const { runRequestGatewayCommand } = await import("./request-gateways.js");
    await runRequestGatewayCommand(name, module, options);
  });
}

const LISTEN_HELP =
  "unix socket path, host:port, port, or fd:0 (default: fd:0, the listening socket on fd 0)";

/** Every option a long-lived server command takes, whatever its protocol. */
function serverCommandOptions<A extends unknown[], O extends OptionValues>(
  command: AnyCommand<A, O>,
  listenHelp = LISTEN_HELP,
) {
  return cacheDirOption(monitoringOptions(workerOptions(listeningOptions(command, listenHelp))));
}

/**
 * How a server process serves: where it listens and who may connect, how much
 * it takes on at once, how long it waits for a request, how long requests in
 * flight get to finish when it stops, and what it tells the application about
 * other processes.
 */
function listeningOptions<A extends unknown[], O extends OptionValues>(
  command: AnyCommand<A, O>,
  listenHelp: string,
) {
  return command
    .option("-l, --listen <address>", listenHelp)
    .addOption(
      // The default is shown as the octal a user would type, not as 432.
      new Option("--socket-mode <octal>", "permissions of a unix socket, whatever the umask")
        .argParser(octal)
        .default(0o660, "660"),
    )
    .option(
      "--allow <addresses>",
      "comma-separated peer addresses allowed over TCP (fcgi: adds to FCGI_WEB_SERVER_ADDRS)",
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
      "requests in progress at once; more are refused (FCGI_OVERLOADED, or 503)",
      integer,
      1024,
    )
    .option("--max-connections <n>", "connections open at once", integer, 1024)
    .option(
      "--receive-timeout <seconds>",
      "give up a request whose head or body stalls this long",
      number,
      60,
    )
    .option(
      "--multiprocess",
      "set tsgi.multiprocess: other processes serve the same app (default: with fd 0 or --workers)",
    );
}

/** What only FastCGI offers in its protocol. */
function fastcgiOptions<A extends unknown[], O extends OptionValues>(command: AnyCommand<A, O>) {
  return command
    .option("--max-requests-per-connection <n>", "requests at once on one connection", integer, 64)
    .option("--max-params-bytes <n>", "size limit of one request's FCGI_PARAMS", integer, 1 << 20)
    .option("--no-multiplex", "one request at a time per connection (FCGI_MPXS_CONNS=0)")
    .option(
      "--stderr-to-web-server",
      "send tsgi.errors as FCGI_STDERR records instead of to stderr",
    );
}

/** The size limit of an SCGI or uwsgi request's header block. */
function headerLimitOption<A extends unknown[], O extends OptionValues>(command: AnyCommand<A, O>) {
  return command.option(
    "--max-header-bytes <n>",
    "size limit of one request's header block (larger: 431)",
    integer,
    64 * 1024,
  );
}

/** Time limits and the pages tsgi answers itself. */
function monitoringOptions<A extends unknown[], O extends OptionValues>(command: AnyCommand<A, O>) {
  return command
    .option("--request-timeout <seconds>", "give up a call running longer: 504, or cut off", number)
    .option("--slow-request <seconds>", "log a request still running after this long", number)
    .option("--status-path <path>", "answer this path with tsgi's status (text; JSON with ?json)")
    .option("--ping-path <path>", 'answer this path with "pong"');
}

/** Worker processes sharing the listening socket, and when one is replaced. */
function workerOptions<A extends unknown[], O extends OptionValues>(command: AnyCommand<A, O>) {
  return command
    .option(
      "-w, --workers <n>",
      'worker processes sharing the socket ("auto": one per CPU); without it, one process',
      workerCount,
    )
    .option(
      "--max-requests <n>",
      "recycle a worker (or this process) after it served this many requests",
      integer,
    );
}

function cacheDirOption<A extends unknown[], O extends OptionValues>(command: AnyCommand<A, O>) {
  return command.option(
    "--cache-dir <dir>",
    "where a TypeScript application is compiled to (default: $TSGI_CACHE_DIR, else node_modules/.cache/tsgi of its project)",
  );
}

function addBuildCommand(program: Command): void {
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
    .action(async (module, options) => {
      const { runBuildCommand } = await import("./build.js");
      await runBuildCommand(module, options.out);
    });
}

function addServeCommand(program: Command): void {
  const command = program
    .command("serve")
    .description(
      "serve an application over HTTP: for development, or with --workers behind a proxy (nginx proxy_pass)",
    )
    .argument("<module>", MODULE_HELP)
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "TCP port (0: any free port)", port, 8000)
    .option("--no-access-log", "write no access log line per request (default: on stderr)")
    .option(
      "--script-name <path>",
      "URL path prefix the app is mounted at behind a proxy that passes the whole path: SCRIPT_NAME",
    )
    .option(
      "--keep-alive-timeout <seconds>",
      "how long an idle keep-alive connection stays open",
      number,
      5,
    )
    .option(
      "--watch",
      "restart the application when a file it loaded changes, keeping the listening socket (one process)",
    );
  serverCommandOptions(
    command,
    "unix socket path or host:port (default: --host and --port)",
  ).action(async (module, options) => {
    const { runServeCommand } = await import("../http/serve.js");
    await runServeCommand(module, {
      ...options,
      watch: options.watch === true,
      accessLog: options.accessLog ? undefined : false,
    });
  });
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
