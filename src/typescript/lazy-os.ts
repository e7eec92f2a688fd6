// node:os, loaded on first use. Only the rarer paths need it (no project to
// keep the cache in, a warning naming the user), and loading it costs about
// 0.4 ms of every CGI start of a TypeScript application otherwise.

import { createRequire } from "node:module";

type Os = typeof import("node:os");
let os: Os | undefined;

export function lazyOs(): Os {
  return (os ??= createRequire(import.meta.url)("node:os") as Os);
}
