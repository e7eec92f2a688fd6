// `tsgi serve <module>`: the HTTP gateway run as every server command is
// (cli/server-command.ts: workers, reload, recycling, signals), listening on
// --host and --port unless --listen says otherwise; with --watch, the
// development loop of watch.ts instead.

import { runServerCommand, type ServerCommandOptions } from "../cli/server-command.js";
import { HTTP_INHERITED_SOCKET_HINT, serveHttp, type HttpServerOptions } from "./gateway.js";

export interface ServeCommandOptions extends ServerCommandOptions, HttpServerOptions {
  host: string;
  port: number;
  /** Restart the application when a file it loaded changes (--watch). */
  watch?: boolean;
  /** Write no access log (--no-access-log). */
  accessLog?: false;
}

export async function runServeCommand(spec: string, options: ServeCommandOptions): Promise<void> {
  if (options.watch) {
    if (options.workers !== undefined || options.listen !== undefined) {
      process.stderr.write("[tsgi] http: --watch runs one process on --host and --port\n");
      process.exitCode = 2;
      return;
    }
    const { WATCH_CHILD, runWatchChild, runWatchPrimary } = await import("./watch.js");
    return process.env[WATCH_CHILD] ? runWatchChild(spec, options) : runWatchPrimary(spec, options);
  }
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  await runServerCommand(
    spec,
    { ...options, listen: options.listen ?? `${host}:${options.port}` },
    { name: "http", inheritedSocketHint: HTTP_INHERITED_SOCKET_HINT, serve: serveHttp },
  );
}
