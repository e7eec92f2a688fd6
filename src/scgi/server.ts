// The long-lived SCGI server (nginx scgi_pass, Apache mod_proxy_scgi,
// lighttpd mod_scgi): one request per connection, a CGI-style response.

import { formatCgiHead } from "../headers.js";
import type { RequestServerOptions } from "../server/request-server.js";
import { serveRequests } from "../server/request-server.js";
import type { RunningServer } from "../server/serve.js";
import type { Application } from "../types.js";
import { parseScgiHead, scgiHeadSize } from "./protocol.js";

/** What to do when fd 0 is no listening socket, for `tsgi scgi` without --listen. */
export const SCGI_INHERITED_SOCKET_HINT =
  "tsgi scgi without --listen expects a listening socket as fd 0; " +
  "to run it yourself, give --listen /path/to.sock or --listen 127.0.0.1:4000";

export type ScgiOptions = RequestServerOptions;
export type ScgiServer = RunningServer;

// Apache's mod_proxy_scgi takes nothing but a CGI-style head (`Status:`), so that is what is sent.
const SCGI_FORMAT = {
  headSize: scgiHeadSize,
  parseHead: parseScgiHead,
  formatHead: formatCgiHead,
};

export function serveScgi(app: Application, options: ScgiOptions = {}): Promise<ScgiServer> {
  return serveRequests(
    app,
    options,
    { name: "scgi", inheritedSocketHint: SCGI_INHERITED_SOCKET_HINT },
    SCGI_FORMAT,
  );
}
