// Stack traces name the TypeScript source, line and column. Node's own
// source-map support (process.setSourceMapsEnabled) decodes the map of every
// file as it is compiled, about 1 ms of each CGI start, a quarter of what a
// warm TypeScript start costs over the same application compiled to .js. Here
// a file's map is decoded only when a stack trace passes through that file,
// which most requests never see. The compiled code keeps its inline map, so a
// debugger (--inspect) still shows the source.

import { SourceMap, type SourceMapPayload } from "node:module";

const MARK = "\n//# sourceMappingURL=data:application/json;base64,";

/** Compiled code by file name, turned into its decoded map on first use. */
const maps = new Map<string, string | SourceMap | null>();
let installed = false;
let previous: typeof Error.prepareStackTrace;

/** Called with each compiled file before it runs. */
export function rememberSourceMap(filename: string, code: string): void {
  maps.set(filename, code);
}

/**
 * Formats stack traces as Node does by default, with each frame in a compiled
 * file moved to its place in the source. Not installed where Node's own
 * support is on (--enable-source-maps), or where a preloaded module has set
 * Error.prepareStackTrace: either would be overruled. Node 20.20 shows its
 * default formatter there (ErrorPrepareStackTrace); older versions nothing.
 */
export function installStackMapper(): void {
  // Kept to compare by name and to put back, never called on its own: V8's formatter needs no `this`.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const current = Error.prepareStackTrace;
  if (
    installed ||
    process.sourceMapsEnabled ||
    (current !== undefined && current.name !== "ErrorPrepareStackTrace")
  )
    return;
  installed = true;
  previous = current;
  Error.prepareStackTrace = (error, sites) => {
    const header = errorHeader(error);
    return sites.length === 0
      ? header
      : `${header}\n    at ${sites.map(mapFrame).join("\n    at ")}`;
  };
}

/** What Node's default prints first: Error.prototype.toString, which an error subclass may not have overridden safely. */
function errorHeader(error: Error): string {
  try {
    return Error.prototype.toString.call(error);
  } catch {
    return "Error";
  }
}

function mapFrame(site: NodeJS.CallSite): string {
  // V8's CallSite prints the frame itself, which @types/node does not declare.
  // eslint-disable-next-line @typescript-eslint/no-base-to-string
  const text = site.toString();
  const file = site.getFileName();
  const line = site.getLineNumber();
  const column = site.getColumnNumber();
  if (!file || line === null || column === null || !maps.has(file)) return text;
  const entry = mapFor(file)?.findEntry(line - 1, column - 1);
  if (!entry || !("originalLine" in entry)) return text;
  const place = `${file}:${line}:${column}`;
  const at = text.lastIndexOf(place);
  if (at < 0) return text;
  return `${text.slice(0, at)}${file}:${entry.originalLine + 1}:${entry.originalColumn + 1}${text.slice(at + place.length)}`;
}

function mapFor(file: string): SourceMap | null {
  const known = maps.get(file);
  if (typeof known !== "string") return known ?? null;
  let map: SourceMap | null = null;
  const at = known.lastIndexOf(MARK);
  try {
    if (at >= 0)
      map = new SourceMap(
        JSON.parse(
          Buffer.from(known.slice(at + MARK.length).trim(), "base64").toString("utf8"),
        ) as SourceMapPayload,
      );
  } catch {
    // A map that cannot be read leaves the frames as they are.
  }
  maps.set(file, map);
  return map;
}

/**
 * For the ES module path (top-level await), whose files are compiled on the
 * module hooks' thread, out of reach here: Node's own support maps them.
 */
export function useNodeSourceMaps(): void {
  if (installed) Error.prepareStackTrace = previous;
  installed = false;
  process.setSourceMapsEnabled(true);
}
