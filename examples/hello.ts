// The smallest TSGI application in TypeScript: `tsgi cgi examples/hello.ts`.
// tsgi compiles it on first use and runs it from its cache afterwards.

import type { Application } from "tsgi";

const hello: Application = (environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  return ["Hello, world!\n"];
};
export default hello;
