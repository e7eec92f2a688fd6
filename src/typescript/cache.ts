// The compile cache on disk: one file per source and output format, named
// after the source path, rewritten when the source changes. Its first line
// names what it was compiled from (the source's path, size, mtime, ctime and
// inode, the compiler's version, the output format) and is checked on every
// read, so a stale file is never run; reading it costs one stat of the source
// and one read. Writes go to a temp file renamed into place, so processes
// starting together on a cold cache never see half a file.

import { lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { CacheLocation } from "./cache-dir.js";
import { describeUser, warnOnce, type WarnFlag } from "./warn.js";

/** Bumped whenever what is stored, or how it is compiled, changes. */
const FORMAT = 1;

export type OutputFormat = "cjs" | "esm";

/** What identifies one version of a source file without reading it. */
export interface SourceVersion {
  path: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

export interface CacheEntry<Meta> {
  meta: Meta;
  code: string;
}

export class CompileCache {
  private usable: boolean | undefined;
  private writable = true;

  constructor(
    readonly location: CacheLocation,
    private readonly compiler: string,
    private readonly warned: WarnFlag,
  ) {}

  read<Meta>(source: SourceVersion, format: OutputFormat): CacheEntry<Meta> | undefined {
    if (!this.isUsable()) return undefined;
    let text: string;
    try {
      text = readFileSync(this.fileFor(source, format), "utf8");
    } catch {
      return undefined;
    }
    const newline = text.indexOf("\n");
    if (newline < 0 || !text.startsWith("//tsgi ")) return undefined;
    try {
      const header = JSON.parse(text.slice(7, newline)) as { key: string; meta: Meta };
      if (header.key !== this.key(source, format)) return undefined;
      return { meta: header.meta, code: text.slice(newline + 1) };
    } catch {
      return undefined;
    }
  }

  write<Meta>(source: SourceVersion, format: OutputFormat, entry: CacheEntry<Meta>): void {
    if (!this.writable || !this.isUsable()) return;
    const file = this.fileFor(source, format);
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const text = `//tsgi ${JSON.stringify({ key: this.key(source, format), meta: entry.meta })}\n${entry.code}`;
    try {
      // A temp dir of our own must stay closed to other users; a project's cache follows the umask.
      mkdirSync(this.location.dir, {
        recursive: true,
        mode: this.location.origin === "temp" ? 0o700 : 0o777,
      });
      writeFileSync(temp, text, { flag: "wx" });
      renameSync(temp, file);
    } catch (error) {
      removeQuietly(temp);
      this.writable = false;
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      warnOnce(
        this.warned,
        `cannot write the TypeScript compile cache ${this.location.dir} (${reason}), so TypeScript is compiled in memory at every start: ` +
          `make that directory writable by ${describeUser()}, or set TSGI_CACHE_DIR (--cache-dir for tsgi fcgi and tsgi serve) to one that is`,
      );
    }
  }

  /**
   * A temp dir is trusted only if it is a real directory of ours that no one
   * else can write to: anyone may create /tmp/tsgi-cache-<uid> first and fill
   * it with code for us to run.
   */
  private isUsable(): boolean {
    if (this.usable !== undefined) return this.usable;
    this.usable = true;
    if (this.location.origin !== "temp") return true;
    try {
      const stat = lstatSync(this.location.dir);
      const ours = typeof process.getuid !== "function" || stat.uid === process.getuid();
      this.usable = stat.isDirectory() && ours && (stat.mode & 0o022) === 0;
    } catch (error) {
      // Missing: write() creates it, mode 700.
      this.usable = (error as NodeJS.ErrnoException).code === "ENOENT";
    }
    if (!this.usable) {
      warnOnce(
        this.warned,
        `not using the TypeScript compile cache ${this.location.dir}: it is not a directory owned by ${describeUser()} and closed to other users, ` +
          `so TypeScript is compiled in memory at every start: remove it, or set TSGI_CACHE_DIR (--cache-dir for tsgi fcgi and tsgi serve)`,
      );
    }
    return this.usable;
  }

  private key(source: SourceVersion, format: OutputFormat): string {
    const node = process.versions.node.split(".")[0];
    return [
      FORMAT,
      this.compiler,
      `node${node}`,
      format,
      source.path,
      source.size,
      source.mtimeMs,
      source.ctimeMs,
      source.ino,
    ].join("|");
  }

  private fileFor(source: SourceVersion, format: OutputFormat): string {
    return join(
      this.location.dir,
      `${basename(source.path)}.${hashPath(source.path)}.${format}.js`,
    );
  }
}

/** A short name for a path (FNV-1a, 2 × 32 bits); the header holds the whole path, so a collision is only a miss. */
function hashPath(path: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let index = 0; index < path.length; index++) {
    const code = path.charCodeAt(index);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x5bd1e995);
  }
  return (a >>> 0).toString(36) + (b >>> 0).toString(36);
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created.
  }
}
