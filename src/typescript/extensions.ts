// Which files the TypeScript loader compiles, and the JavaScript name an
// import may give one: TypeScript's own convention is to import `./x.ts` as
// `./x.js`, the file tsc would have written.

export const TYPESCRIPT_EXTENSIONS = [".ts", ".mts", ".cts"] as const;

export function isTypeScript(path: string): boolean {
  return TYPESCRIPT_EXTENSIONS.some((extension) => path.endsWith(extension));
}

const TWINS: Record<string, string> = { ".js": ".ts", ".mjs": ".mts", ".cjs": ".cts" };

/**
 * `./x.js` → `./x.ts` (`.mjs` → `.mts`, `.cjs` → `.cts`) for a relative or
 * absolute path; undefined for anything else, package names included: a
 * package's files are its own business.
 */
export function typeScriptTwin(specifier: string): string | undefined {
  if (!/^(?:\.\.?\/|\/|file:)/.test(specifier)) return undefined;
  const match = /\.[cm]?js$/.exec(specifier);
  if (!match) return undefined;
  return specifier.slice(0, match.index) + TWINS[match[0]];
}
