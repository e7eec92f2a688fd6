// The one line a process writes about its compile cache. The flag lives in
// shared memory because the ES module hooks (for top-level await) run on a
// thread of their own and must not say it a second time.

import { lazyOs } from "./lazy-os.js";

export type WarnFlag = Int32Array;

export function newWarnFlag(): WarnFlag {
  return new Int32Array(new SharedArrayBuffer(4));
}

export function warnOnce(flag: WarnFlag, message: string): void {
  if (Atomics.compareExchange(flag, 0, 0, 1) === 0)
    process.stderr.write(`[tsgi] typescript: ${message}\n`);
}

/** The user the process runs as, for telling an administrator whose permissions are missing. */
export function describeUser(): string {
  try {
    return lazyOs().userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? "?"}`;
  }
}
