// `tsgi scgi <module>` and `tsgi uwsgi <module>`: their servers, run as every
// server command is (server-command.ts).

import { serveScgi } from "../scgi/server.js";
import { serveUwsgi } from "../uwsgi/server.js";
import { inheritedSocketHint, type RequestServerOptions } from "../server/request-server.js";
import { runServerCommand, type ServerCommandOptions } from "./server-command.js";

const SERVERS = { scgi: serveScgi, uwsgi: serveUwsgi };

export function runRequestGatewayCommand(
  command: keyof typeof SERVERS,
  spec: string,
  options: ServerCommandOptions & RequestServerOptions,
): Promise<void> {
  return runServerCommand(spec, options, {
    name: command,
    inheritedSocketHint: inheritedSocketHint(command),
    serve: SERVERS[command],
  });
}
