// The long-lived SCGI server (nginx scgi_pass, Apache mod_proxy_scgi,
// lighttpd mod_scgi): one request per connection, a CGI-style response.

import { formatCgiHead } from "../headers.js";
import { requestGateway } from "../server/request-server.js";
import { parseScgiHead, scgiHeadSize } from "./protocol.js";

/** Serves `app` to SCGI web servers until closed. */
export const serveScgi = requestGateway({
  name: "scgi",
  headSize: scgiHeadSize,
  parseHead: parseScgiHead,
  // Apache's mod_proxy_scgi takes nothing but a CGI-style head (`Status:`).
  formatHead: formatCgiHead,
});
