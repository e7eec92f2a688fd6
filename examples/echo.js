// Echoes the request back as text/plain: every string-valued environ key as a
// `KEY=value` line (sorted), then the request body's length and SHA-256.
// Try it: `REQUEST_METHOD=GET tsgi cgi examples/echo.js`, or behind a web server.

import { createHash } from "node:crypto";

/** @type {import("tsgi").Application} */
export default async function echo(environ, startResponse) {
  const hash = createHash("sha256");
  let length = 0;
  for await (const chunk of environ["tsgi.input"]) {
    hash.update(chunk);
    length += chunk.length;
  }

  const lines = Object.entries(environ)
    .flatMap(([key, value]) => (typeof value === "string" ? [`${key}=${value}`] : []))
    .sort();
  lines.push(`body.length=${length}`, `body.sha256=${hash.digest("hex")}`);

  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  // environ strings hold one byte per character (Latin-1), so encoding them back
  // as Latin-1 returns exactly the bytes the web server sent: UTF-8 stays UTF-8.
  return [Buffer.from(lines.join("\n") + "\n", "latin1")];
}
