// Byte helpers the end-to-end tests share: hashes, and the pattern the
// fixture apps' /stream routes send.

import { createHash } from "node:crypto";

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** What the fixtures' /stream routes send: 64 KiB chunks of byte `index & 0xff`, each starting with `index` (32-bit BE). */
export function streamPattern(total: number): Buffer {
  const out = Buffer.alloc(total);
  for (let index = 0, offset = 0; offset < total; index++, offset += 65536) {
    const size = Math.min(65536, total - offset);
    out.fill(index & 0xff, offset, offset + size);
    if (size >= 4) out.writeUInt32BE(index, offset);
  }
  return out;
}
