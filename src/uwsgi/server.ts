// The long-lived uwsgi server (nginx uwsgi_pass, Apache mod_proxy_uwsgi,
// lighttpd mod_scgi with the uwsgi protocol): one request per connection, an
// HTTP status line response as uWSGI sends.

import { formatHttpHead } from "../headers.js";
import { requestGateway } from "../server/request-server.js";
import { parseUwsgiHead, uwsgiHeadSize } from "./protocol.js";

/** Serves `app` to uwsgi-protocol web servers until closed. */
export const serveUwsgi = requestGateway({
  name: "uwsgi",
  headSize: uwsgiHeadSize,
  parseHead: parseUwsgiHead,
  // Apache's mod_proxy_uwsgi answers 502 to a CGI-style `Status:` head: a status line it is.
  formatHead: formatHttpHead,
});
