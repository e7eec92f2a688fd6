// The CGI process behind a real Apache httpd 2.4 (mod_cgi with the prefork
// MPM, mod_cgid with the event MPM), through the examples/deploy/apache-cgi
// wrapper: the response does not wait for what the application left running,
// a chunked upload reaches the application, a body left unread does not lose
// the response, and a response cut off after its headers is in the error log.

import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { example, MATRIX_APP, waitForLog, writeFile } from "./helpers/frontends.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { sha256 } from "./helpers/bytes.js";
import { FIXTURES, ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";

const apacheBinary = findBinary("apache2", "apache2");
const curlBinary = findBinary("curl", "curl");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const LIFETIME_APP = join(FIXTURES, "cgi-lifetime.js");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

interface Curl {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs curl (what the user tries first), bounded in time; resolves whatever its exit code. */
function curl(args: string[]): Promise<Curl> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      curlBinary!,
      ["-sS", "--max-time", "20", ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

const SETUPS = [
  { mpm: "event", cgiModule: "cgid" },
  { mpm: "prefork", cgiModule: "cgi" },
] as const;

for (const { mpm, cgiModule } of SETUPS)
  describe.skipIf(!apacheBinary || !curlBinary)(
    `Apache mpm_${mpm} + mod_${cgiModule}: the CGI process and its request`,
    () => {
      let apache: Apache;
      let upload: { path: string; bytes: Buffer };

      beforeAll(async () => {
        const dir = tempDir(group, `tsgi-apache-${cgiModule}-life-`);
        const lines: string[] = [];
        for (const [name, app] of [
          ["app", MATRIX_APP],
          ["life", LIFETIME_APP],
        ] as const) {
          const cgiDir = join(dir, `cgi-${name}`);
          mkdirSync(cgiDir, { recursive: true, mode: 0o755 });
          writeFile(
            join(cgiDir, "app.cgi"),
            example("apache-cgi", "app.cgi", { NODE: process.execPath, TSGI: TSGI_BIN, APP: app }),
            0o755,
          );
          lines.push(
            `ScriptAlias /${name} "${cgiDir}/app.cgi"`,
            `<Directory "${cgiDir}">`,
            "    Require all granted",
            "</Directory>",
          );
        }
        // A one-file build (`tsgi build`), run by a wrapper as `node app.cgi.cjs`.
        const builtDir = join(dir, "cgi-built");
        mkdirSync(builtDir, { recursive: true, mode: 0o755 });
        const built = spawnSync(
          process.execPath,
          [TSGI_BIN, "build", MATRIX_APP, "--out", join(builtDir, "app.cgi.cjs")],
          { encoding: "utf8" },
        );
        if (built.status !== 0) throw new Error(`tsgi build failed: ${built.stderr}`);
        writeFile(
          join(builtDir, "app.cgi"),
          `#!/bin/sh\nexec '${process.execPath}' '${join(builtDir, "app.cgi.cjs")}'\n`,
          0o755,
        );
        lines.push(
          `ScriptAlias /built "${builtDir}/app.cgi"`,
          `<Directory "${builtDir}">`,
          "    Require all granted",
          "</Directory>",
        );
        apache = await startApache(group, apacheBinary!, MODULES, {
          dir,
          mpm,
          modules: [cgiModule, "alias"],
          config: lines.join("\n"),
        });
        const bytes = randomBytes(3 * 1024 * 1024 + 5);
        upload = { path: join(dir, "upload.bin"), bytes };
        writeFileSync(upload.path, bytes);
      });

      it("runs a one-file build (tsgi build) as a CGI program: status, header, body and a POST body", async () => {
        const result = await curl(["-D", "-", apache.url("/built/status")]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toMatch(
          /^HTTP\/1\.1 418 [^]*\r\nX-Matrix: custom; v=1\r\n[^]*\r\n\r\nshort and stout\n$/,
        );
        const post = await curl(["--data-binary", `@${upload.path}`, apache.url("/built/sha256")]);
        expect(JSON.parse(post.stdout)).toMatchObject({
          length: upload.bytes.length,
          sha256: sha256(upload.bytes),
        });
      });

      it("answers as soon as the response is written, though the application left a 5 s timer", async () => {
        const result = await curl(["-D", "-", apache.url("/life/timer")]);
        expect(result.code).toBe(0);
        expect(result.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\ndone\n$/);
        // Apache waits for the script's stderr (mod_cgi) or its socket (mod_cgid), not for stdout alone.
        expect(result.ms).toBeLessThan(3000);
      });

      it("hands a chunked upload (no Content-Length) to the application whole", async () => {
        const result = await curl([
          "-H",
          "Transfer-Encoding: chunked",
          "--data-binary",
          `@${upload.path}`,
          apache.url("/app/sha256"),
        ]);
        expect(result.code, result.stderr).toBe(0);
        expect(JSON.parse(result.stdout)).toEqual({
          length: upload.bytes.length,
          sha256: sha256(upload.bytes),
          contentLength: null,
        });
      });

      it.each([
        ["a chunked upload", ["-H", "Transfer-Encoding: chunked"]],
        ["an upload with a Content-Length", []],
      ])("answers when the application leaves %s unread", async (_name, headers) => {
        const result = await curl([
          "-D",
          "-",
          ...headers,
          "--data-binary",
          `@${upload.path}`,
          apache.url("/life/ignore-body"),
        ]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toMatch(/\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nnot read\n$/);
      });

      it("logs a response cut off after its headers in Apache's error log", async () => {
        await curl([apache.url("/life/cut")]);
        const log = await waitForLog(
          () => apache.errorLog(),
          "GET /life/cut: response cut off: the error came after the headers were sent",
        );
        expect(log).toContain("[tsgi] GET /life/cut: error in application: Error: cut on purpose");
      });

      if (cgiModule === "cgid") {
        it("mod_cgid: a response cut off while the request body is unread reaches the client as a failure, not as whole", async () => {
          const result = await curl(["--data-binary", `@${upload.path}`, apache.url("/life/cut")]);
          expect(result.code).not.toBe(0);
        });
      }
    },
  );
