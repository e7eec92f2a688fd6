// `tsgi fcgi <module>`: the FastCGI server, run as every server command is (server-command.ts).

import {
  FASTCGI_INHERITED_SOCKET_HINT,
  serveFastCgi,
  type FastCgiOptions,
} from "../fastcgi/server.js";
import { runServerCommand, type ServerCommandOptions } from "./server-command.js";

export type FcgiCommandOptions = ServerCommandOptions & FastCgiOptions;

export function runFcgiCommand(spec: string, options: FcgiCommandOptions): Promise<void> {
  return runServerCommand(spec, options, {
    name: "fastcgi",
    inheritedSocketHint: FASTCGI_INHERITED_SOCKET_HINT,
    serve: serveFastCgi,
  });
}
