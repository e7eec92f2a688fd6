// The long-lived uwsgi server (nginx uwsgi_pass, Apache mod_proxy_uwsgi,
// lighttpd mod_scgi with the uwsgi protocol): one request per connection, an
// HTTP status line response as uWSGI sends.

import { formatHttpHead } from "../headers.js";
import type { RequestServerOptions } from "../server/request-server.js";
import { serveRequests } from "../server/request-server.js";
import type { RunningServer } from "../server/serve.js";
import type { Application } from "../types.js";
import { parseUwsgiHead, uwsgiHeadSize } from "./protocol.js";

/** What to do when fd 0 is no listening socket, for `tsgi uwsgi` without --listen. */
export const UWSGI_INHERITED_SOCKET_HINT =
  "tsgi uwsgi without --listen expects a listening socket as fd 0; " +
  "to run it yourself, give --listen /path/to.sock or --listen 127.0.0.1:3031";

export type UwsgiOptions = RequestServerOptions;
export type UwsgiServer = RunningServer;

// Apache's mod_proxy_uwsgi answers 502 to a CGI-style `Status:` head: the status line it is.
const UWSGI_FORMAT = {
  headSize: uwsgiHeadSize,
  parseHead: parseUwsgiHead,
  formatHead: formatHttpHead,
};

export function serveUwsgi(app: Application, options: UwsgiOptions = {}): Promise<UwsgiServer> {
  return serveRequests(
    app,
    options,
    { name: "uwsgi", inheritedSocketHint: UWSGI_INHERITED_SOCKET_HINT },
    UWSGI_FORMAT,
  );
}
