// The part of node-fastcgi (which ships no types) that node-fastcgi-app.cjs
// uses: its requests and responses are node:http's.
declare module "node-fastcgi" {
  import type { IncomingMessage, ServerResponse } from "node:http";
  import type { Server } from "node:net";

  export function createServer(
    responder: (req: IncomingMessage, res: ServerResponse) => void,
  ): Server;
}
