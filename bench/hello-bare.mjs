// A hand-written one-file CGI hello in ESM: the floor for an ESM application.
process.stdout.write(
  "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n",
);
