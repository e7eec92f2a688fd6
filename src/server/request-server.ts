// A server for a one-request-per-connection protocol (SCGI, uwsgi): the
// gateway-neutral core with a RequestConnection per accepted socket.

import type { Application } from "../types.js";
import {
  coreOptions,
  defaultMultiprocess,
  requestTimes,
  type GatewayServerOptions,
  type ProtocolIdentity,
} from "./options.js";
import { RequestConnection, type RequestFormat } from "./request-connection.js";
import { gatewayLog, serveConnections, type RunningServer } from "./serve.js";

export interface RequestServerOptions extends GatewayServerOptions {
  /** Largest request header block taken; a larger one is answered 431. Default 64 KiB. */
  maxHeaderBytes?: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;

/** A protocol of one request per connection: its name, its wire format, and what its command needs. */
export interface RequestProtocol extends RequestFormat {
  name: string;
}

/** What to do when fd 0 is no listening socket, for `tsgi <command>` without --listen. */
export function inheritedSocketHint(command: string): string {
  return (
    `tsgi ${command} without --listen expects a listening socket as fd 0; ` +
    "to run it yourself, give --listen /path/to.sock or --listen host:port"
  );
}

/** The `serve` function of a protocol of one request per connection. */
export function requestGateway(
  protocol: RequestProtocol,
): (app: Application, options?: RequestServerOptions) => Promise<RunningServer> {
  const identity = {
    name: protocol.name,
    inheritedSocketHint: inheritedSocketHint(protocol.name),
    // Most responses leave in one write before the socket closes, which Nagle's
    // algorithm never holds back: TCP_NODELAY, a system call per connection, is
    // set only for a response written in more than one piece.
    ownNoDelay: true,
  };
  return (app, options = {}) => serveRequests(app, options, identity, protocol);
}

function serveRequests(
  app: Application,
  options: RequestServerOptions,
  protocol: ProtocolIdentity,
  format: RequestFormat,
): Promise<RunningServer> {
  const core = coreOptions(protocol, options);
  const settings = {
    maxHeadBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
    errors: core.errors,
    multiprocess: defaultMultiprocess(options),
    reclaimBodyMemory: options.reclaimBodyMemory ?? false,
    log: gatewayLog(core.errors, protocol.name),
    ...requestTimes(options),
  };
  return serveConnections(core, ({ hooks, pages }) => {
    const withPages = { ...settings, pages };
    return (socket) => new RequestConnection(socket, withPages, hooks, app, format);
  });
}
