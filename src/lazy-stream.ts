// node:stream, loaded the first time a request needs it rather than when tsgi
// is imported: a CGI process pays the start-up of every module it loads, and
// a request that never touches its body or error stream needs none of it.

import { createRequire } from "node:module";

let nodeStream: typeof import("node:stream") | undefined;

export function streamModule(): typeof import("node:stream") {
  return (nodeStream ??= createRequire(import.meta.url)(
    "node:stream",
  ) as typeof import("node:stream"));
}
