// A TypeScript file's compiled code, from the cache when the source is
// unchanged, else compiled and stored.

import { readFileSync, statSync } from "node:fs";
import type { CompileCache, SourceVersion } from "./cache.js";
import { compileCommonJs, compileEsm, type CommonJsOutput } from "./compiler.js";

type CommonJsMeta = { async: true } | { async: false; deps: string[] };

export class CachedCompiler {
  constructor(private readonly cache: CompileCache) {}

  commonJs(path: string): CommonJsOutput {
    const source = sourceVersion(path);
    const hit = this.cache.read<CommonJsMeta>(source, "cjs");
    if (hit)
      return hit.meta.async
        ? { async: true }
        : { async: false, code: hit.code, deps: hit.meta.deps };
    // Read after the stat: a write in between changes the mtime, so the entry is stale at once rather than wrong.
    const output = compileCommonJs(readFileSync(path, "utf8"), path);
    const entry = output.async
      ? { meta: { async: true as const }, code: "" }
      : { meta: { async: false as const, deps: output.deps }, code: output.code };
    this.cache.write<CommonJsMeta>(source, "cjs", entry);
    return output;
  }

  async esm(path: string): Promise<string> {
    const source = sourceVersion(path);
    const hit = this.cache.read<null>(source, "esm");
    if (hit) return hit.code;
    const code = await compileEsm(readFileSync(path, "utf8"), path);
    this.cache.write(source, "esm", { meta: null, code });
    return code;
  }
}

function sourceVersion(path: string): SourceVersion {
  const { size, mtimeMs, ctimeMs, ino } = statSync(path);
  return { path, size, mtimeMs, ctimeMs, ino };
}
