// `tsgi scgi <module>` and `tsgi uwsgi <module>`: their servers, run as every
// server command is (server-command.ts).

import { SCGI_INHERITED_SOCKET_HINT, serveScgi, type ScgiOptions } from "../scgi/server.js";
import { UWSGI_INHERITED_SOCKET_HINT, serveUwsgi, type UwsgiOptions } from "../uwsgi/server.js";
import { runServerCommand, type ServerCommandOptions } from "./server-command.js";

export function runScgiCommand(
  spec: string,
  options: ServerCommandOptions & ScgiOptions,
): Promise<void> {
  return runServerCommand(spec, options, {
    name: "scgi",
    inheritedSocketHint: SCGI_INHERITED_SOCKET_HINT,
    serve: serveScgi,
  });
}

export function runUwsgiCommand(
  spec: string,
  options: ServerCommandOptions & UwsgiOptions,
): Promise<void> {
  return runServerCommand(spec, options, {
    name: "uwsgi",
    inheritedSocketHint: UWSGI_INHERITED_SOCKET_HINT,
    serve: serveUwsgi,
  });
}
