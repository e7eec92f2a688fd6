// tsgi under a shared host's memory limit: Apache's RLimitMEM caps the address
// space of CGI programs, and plain Node cannot start below about 720 MiB (it
// reserves room for compiled code first). The example wrapper
// (examples/deploy/apache-cgi/app.cgi) notices the limit and starts Node
// without a JIT; a wrapper that does not fails every request.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { example, fetchHttp, MATRIX_APP, waitForLog, writeFile } from "./helpers/frontends.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";

const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const LIMIT_BYTES = 512 * 1024 * 1024;
const NOTICE =
  /tsgi: address space limited to 512 MiB \(RLimitMEM or ulimit -v\): starting node with --jitless --no-expose-wasm/;

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

const SETUPS = [
  { mpm: "event", cgiModule: "cgid" },
  { mpm: "prefork", cgiModule: "cgi" },
] as const;

for (const { mpm, cgiModule } of SETUPS)
  describe.skipIf(!apacheBinary)(
    `Apache mpm_${mpm} + mod_${cgiModule} with RLimitMEM 512 MiB`,
    () => {
      let limited: Apache;
      let unlimited: Apache;

      /** An Apache serving /app through the example wrapper and /direct through one that execs node as it is. */
      async function start(limit: boolean): Promise<Apache> {
        const dir = tempDir(group, `tsgi-apache-${cgiModule}-limit-`);
        const lines: string[] = limit ? [`RLimitMEM ${LIMIT_BYTES} ${LIMIT_BYTES}`] : [];
        const values = { NODE: process.execPath, TSGI: TSGI_BIN, APP: MATRIX_APP };
        const wrappers = {
          app: example("apache-cgi", "app.cgi", values),
          direct: `#!/bin/sh\nexec '${values.NODE}' '${values.TSGI}' cgi '${values.APP}'\n`,
        };
        for (const [name, text] of Object.entries(wrappers)) {
          const cgiDir = join(dir, `cgi-${name}`);
          mkdirSync(cgiDir, { recursive: true, mode: 0o755 });
          writeFile(join(cgiDir, "app.cgi"), text, 0o755);
          lines.push(
            `ScriptAlias /${name} "${cgiDir}/app.cgi"`,
            `<Directory "${cgiDir}">`,
            "    Require all granted",
            "</Directory>",
          );
        }
        return startApache(group, apacheBinary!, MODULES, {
          dir,
          mpm,
          modules: [cgiModule, "alias"],
          config: lines.join("\n"),
        });
      }

      beforeAll(async () => {
        limited = await start(true);
        unlimited = await start(false);
      });

      it("the example wrapper starts node without a JIT and the request is answered, with one line in the error log", async () => {
        const result = await fetchHttp(limited.url("/app/status"));
        expect(result.status).toBe(418);
        expect(result.body.toString()).toBe("short and stout\n");
        await waitForLog(() => limited.errorLog(), NOTICE);
      });

      it("without the wrapper's check, node dies before the application runs: a 500 and V8's CodeRange line", async () => {
        const result = await fetchHttp(limited.url("/direct/status"));
        expect(result.status).toBe(500);
        await waitForLog(
          () => limited.errorLog(),
          "Failed to reserve virtual memory for CodeRange",
        );
      });

      it("without a limit the wrapper adds no flags and says nothing", async () => {
        const result = await fetchHttp(unlimited.url("/app/status"));
        expect(result.status).toBe(418);
        expect(unlimited.errorLog()).not.toMatch(/address space limited/);
      });
    },
  );
