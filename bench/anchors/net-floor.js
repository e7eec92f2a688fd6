// The least a Node.js process can do for one request per connection behind
// uwsgi_pass (bench/anchors.js): accept, read the first bytes, write a fixed
// uwsgi response (an HTTP status line and headers, as uWSGI sends), and close
// once the kernel has it (no shutdown and wait for the peer's end). No
// parsing, no application: what any Node uwsgi or SCGI server pays per
// connection in node:net before doing anything of its own.
// usage: node bench/anchors/net-floor.js <port>   (listens on 127.0.0.1)

import { createServer } from "node:net";

const RESPONSE = Buffer.from(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n",
);

createServer((socket) => {
  socket.once("data", () => socket.write(RESPONSE, () => socket.destroy()));
  socket.on("error", () => {});
}).listen(Number(process.argv[2]), "127.0.0.1");

process.on("SIGTERM", () => process.exit(0));
