// A TypeScript application behind a real Apache httpd 2.4 as CGI, through the
// examples/deploy/apache-cgi wrapper (app.cgi) unchanged: Apache passes
// TSGI_CACHE_DIR from its configuration (SetEnv) to the wrapper and so to
// tsgi. Once with a cache directory the CGI user can write, once with one it
// cannot. Needs `npm run build` first.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  example,
  fetchHttp,
  serverWritableDir,
  waitForLog,
  writeFile,
} from "./helpers/frontends.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";
import {
  cacheFiles,
  cacheIdentities,
  EXPECTED_REPORTS,
  throwSite,
  tsFixture,
} from "./helpers/typescript.js";

const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const APP = tsFixture("app.ts");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const SETUPS = [
  { mpm: "event", cgiModule: "cgid" },
  { mpm: "prefork", cgiModule: "cgi" },
] as const;

for (const { mpm, cgiModule } of SETUPS)
  describe.skipIf(!apacheBinary)(
    `a TypeScript application under Apache mpm_${mpm} + mod_${cgiModule}`,
    () => {
      let apache: Apache;
      let writableCache: string;
      let readOnlyCache: string;

      beforeAll(async () => {
        const dir = tempDir(group, `tsgi-apache-ts-${cgiModule}-`);
        writableCache = serverWritableDir(join(dir, "cache"));
        // Owned by whoever runs the tests, mode 555: Apache's CGI user (nobody when we are root) cannot write it.
        readOnlyCache = join(dir, "read-only-cache");
        mkdirSync(readOnlyCache, { mode: 0o555 });
        const wrapper = example("apache-cgi", "app.cgi", {
          NODE: process.execPath,
          TSGI: TSGI_BIN,
          APP,
        });
        const config = [
          example("apache-cgi", "tsgi-cgi.conf", { CGI_DIR: join(dir, "cgi-bin") }),
          `<Location "/app">`,
          `    SetEnv TSGI_CACHE_DIR "${writableCache}"`,
          "</Location>",
        ];
        mkdirSync(join(dir, "cgi-bin"), { mode: 0o755 });
        writeFile(join(dir, "cgi-bin", "app.cgi"), wrapper, 0o755);
        // The same wrapper at /app-ro, with the cache it cannot write.
        mkdirSync(join(dir, "cgi-bin-ro"), { mode: 0o755 });
        writeFile(join(dir, "cgi-bin-ro", "app.cgi"), wrapper, 0o755);
        config.push(
          `ScriptAlias /app-ro "${join(dir, "cgi-bin-ro", "app.cgi")}"`,
          `<Directory "${join(dir, "cgi-bin-ro")}">`,
          "    Require all granted",
          "</Directory>",
          `<Location "/app-ro">`,
          `    SetEnv TSGI_CACHE_DIR "${readOnlyCache}"`,
          "</Location>",
        );
        apache = await startApache(group, apacheBinary!, MODULES, {
          dir,
          mpm,
          modules: [cgiModule, "alias", "env"],
          config: config.join("\n"),
        });
      });

      const cacheLines = () =>
        apache
          .errorLog()
          .split("\n")
          .filter((line) => line.includes("[tsgi] typescript:"));

      it("a writable cache: compiled by the first request, run from the cache by the next, nothing in the error log", async () => {
        const identities: Record<string, string>[] = [];
        for (let index = 0; index < 3; index++) {
          const result = await fetchHttp(apache.url("/app/report"));
          expect(result.status, result.body.toString()).toBe(200);
          expect(JSON.parse(result.body.toString("utf8"))).toEqual(EXPECTED_REPORTS["app.ts"]);
          identities.push(cacheIdentities(writableCache));
        }
        expect(
          cacheFiles(writableCache).map((name) => name.split(".").slice(0, 2).join(".")),
        ).toEqual(["app.ts", "greeting.ts", "shout.ts"]);
        expect(identities[1]).toEqual(identities[0]);
        expect(identities[2]).toEqual(identities[0]);
        expect(cacheLines()).toEqual([]);
      });

      it("a cache it cannot write: every request still answers, each with one line in the error log naming the cache", async () => {
        for (let index = 0; index < 2; index++) {
          const result = await fetchHttp(apache.url("/app-ro/report"));
          expect(result.status, result.body.toString()).toBe(200);
          expect(JSON.parse(result.body.toString("utf8"))).toEqual(EXPECTED_REPORTS["app.ts"]);
        }
        await waitForLog(() => cacheLines().join("\n"), /cannot write[^\n]*\n[^\n]*cannot write/);
        const lines = cacheLines();
        expect(lines).toHaveLength(2);
        for (const line of lines)
          expect(line).toContain(
            `cannot write the TypeScript compile cache ${readOnlyCache} (EACCES)`,
          );
        expect(cacheFiles(readOnlyCache)).toEqual([]);
      });

      it("an exception: a 500, and the error log names app.ts and the line that threw", async () => {
        const result = await fetchHttp(apache.url("/app/throw"));
        expect(result.status).toBe(500);
        await waitForLog(() => apache.errorLog(), `(${throwSite("app.ts")})`);
        expect(apache.errorLog()).toContain("error in application: Error: thrown from app.ts");
      });
    },
  );
