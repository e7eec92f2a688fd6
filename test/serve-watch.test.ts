// `tsgi serve --watch` as a developer uses it: a TypeScript app that imports a
// second file, edited while requests keep arriving. The listening socket stays
// open through every restart (no request is refused), an edit shows up, a
// syntax error becomes a 500 page and a log line, and the next save recovers.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLEAN_PATH, ProcessGroup, sleep, TSGI_BIN, type Proc } from "./helpers/processes.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
      res.on("error", reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error("no answer in 5 s")));
    req.on("error", reject);
    req.end();
  });
}

describe("tsgi serve --watch", () => {
  let dir: string;
  let proc: Proc;
  let port: number;
  const failures: string[] = [];
  const message = (text: string) => writeFileSync(join(dir, "message.ts"), text);

  /** Requests one after another until the body matches; every failure to connect is kept. Bounded. */
  async function until(
    pattern: RegExp,
    timeoutMs = 10_000,
  ): Promise<{ status: number; body: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const reply = await get(port);
        if (pattern.test(reply.body)) return reply;
      } catch (error) {
        failures.push((error as Error).message);
      }
      if (Date.now() > deadline)
        throw new Error(
          `no body matching ${pattern} within ${timeoutMs} ms; stderr:\n${proc.stderr}`,
        );
      await sleep(20);
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsgi-watch-"));
    group.onCleanUp(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "app.ts"),
      [
        'import { message } from "./message.js";',
        "type StartResponse = (status: string, headers: [string, string][]) => void;",
        "const app = (_environ: unknown, startResponse: StartResponse): string[] => {",
        '  startResponse("200 OK", [["Content-Type", "text/plain"]]);',
        "  return [message + '\\n'];",
        "};",
        "export default app;",
      ].join("\n"),
    );
    message('export const message: string = "first";\n');
    proc = group.spawn(
      "tsgi serve --watch",
      process.execPath,
      [TSGI_BIN, "serve", "--watch", join(dir, "app.ts"), "--port", "0"],
      {
        env: { PATH: CLEAN_PATH, TSGI_CACHE_DIR: join(dir, ".cache") },
      },
    );
    const match = await proc.waitForStderr(/on http:\/\/127\.0\.0\.1:(\d+)\//);
    port = Number(match[1]);
  });

  it("serves the app, restarts it when an imported file changes, and refuses no request meanwhile", async () => {
    expect((await until(/first/)).status).toBe(200);
    message('export const message: string = "second";\n');
    expect((await until(/second/)).status).toBe(200);
    expect(proc.stderr).toMatch(/message\.ts changed: restarting the application/);
    expect(failures).toEqual([]);
  });

  it("answers a syntax error with a 500 page naming it and logs it; the next save recovers", async () => {
    message("export const message: string = ;\n");
    const broken = await until(/could not be loaded/);
    expect(broken.status).toBe(500);
    expect(broken.body).toMatch(/message\.ts:1:\d+/);
    expect(proc.stderr).toMatch(/cannot load application module .*\(waiting for a change\)/);
    message('export const message: string = "third";\n');
    expect((await until(/third/)).status).toBe(200);
    expect(failures).toEqual([]);
  });
});
