// Teaches require() TypeScript, for the command line only: each .ts, .mts and
// .cts file is compiled to CommonJS and run with module._compile(code, source),
// so Node resolves its imports, node_modules included, from where the source
// is, and __filename, __dirname and stack traces name the source. An import
// of `./x.js` from a TypeScript file finds `./x.ts` when there is no x.js.
//
// CommonJS cannot await at the top level. Before a file runs, every
// TypeScript file it imports statically, directly or not, is compiled; if one
// awaits at the top level, require() fails with ERR_REQUIRE_ASYNC_MODULE
// before any of them ran, and the caller loads the module with import()
// through the module hooks instead (esm-hooks.ts), with nothing run twice.

// The named export, not the default: a CommonJS bundle would copy every property of a default import, 0.2 ms of each start.
import { Module } from "node:module";
import type { CachedCompiler } from "./cached-compiler.js";
import { TYPESCRIPT_EXTENSIONS, isTypeScript, typeScriptTwin } from "./extensions.js";
import { rememberSourceMap } from "./stack-maps.js";

interface CompilingModule {
  _compile(code: string, filename: string): unknown;
}

type Parent = { filename?: string | null; id?: string; paths?: string[] } | undefined;

/** The parts of Node's CommonJS loader every require hook uses; not in @types/node. */
interface ModuleInternals {
  _extensions: Record<string, (module: CompilingModule, filename: string) => void>;
  /** A function property, not a method: the hook keeps Node's own and calls it with its `this`. */
  _resolveFilename: (
    this: unknown,
    request: string,
    parent: Parent,
    isMain: boolean,
    options?: unknown,
  ) => string;
}

const internals = Module as unknown as ModuleInternals;
let installed = false;

export function installRequireHook(compiler: CachedCompiler): void {
  if (installed) return;
  installed = true;
  const graph = new StaticGraph(compiler);
  for (const extension of TYPESCRIPT_EXTENSIONS) {
    internals._extensions[extension] = (module, filename) => {
      const code = graph.codeFor(filename);
      rememberSourceMap(filename, code);
      module._compile(code, filename);
    };
  }
  const resolve = internals._resolveFilename;
  internals._resolveFilename = function (request, parent, isMain, options) {
    try {
      return resolve.call(this, request, parent, isMain, options);
    } catch (error) {
      const twin =
        parent?.filename && isTypeScript(parent.filename) ? typeScriptTwin(request) : undefined;
      if (twin === undefined || (error as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND")
        throw error;
      try {
        return resolve.call(this, twin, parent, isMain, options);
      } catch {
        throw error;
      }
    }
  };
}

/** Compiled files by path, and which of them were checked for top-level await below them. */
class StaticGraph {
  private readonly compiled = new Map<string, ReturnType<CachedCompiler["commonJs"]>>();
  private readonly checked = new Set<string>();

  constructor(private readonly compiler: CachedCompiler) {}

  codeFor(filename: string): string {
    if (!this.checked.has(filename)) this.check(filename);
    const output = this.compile(filename);
    // Only reached for a file loaded in a way the static imports did not show (require(variable)).
    if (output.async) throw requireAsyncError(filename, filename);
    return output.code;
  }

  /** Compiles `entry` and the TypeScript files it imports, depth first; throws if one awaits at the top level. */
  private check(entry: string): void {
    const pending = [entry];
    const seen = new Set<string>();
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file) || this.checked.has(file)) continue;
      seen.add(file);
      const output = this.compile(file);
      if (output.async) throw requireAsyncError(file, entry);
      for (const request of output.deps) {
        const target = resolveQuietly(request, file);
        if (target !== undefined && isTypeScript(target)) pending.push(target);
      }
    }
    for (const file of seen) this.checked.add(file);
  }

  private compile(file: string): ReturnType<CachedCompiler["commonJs"]> {
    let output = this.compiled.get(file);
    if (output === undefined) {
      output = this.compiler.commonJs(file);
      this.compiled.set(file, output);
    }
    return output;
  }
}

/** Where require() from `file` would find `request` (with the .js → .ts fallback); undefined if nowhere. */
function resolveQuietly(request: string, file: string): string | undefined {
  try {
    return internals._resolveFilename(request, { filename: file, id: file, paths: [] }, false);
  } catch {
    return undefined;
  }
}

function requireAsyncError(file: string, entry: string): Error {
  const via = file === entry ? "" : ` (imported by ${entry})`;
  return Object.assign(new Error(`${file}${via} uses top-level await, which CommonJS cannot run`), {
    code: "ERR_REQUIRE_ASYNC_MODULE",
  });
}
