// tsgi behind a real lighttpd configured from examples/deploy/lighttpd: the
// request matrix under mod_fastcgi (lighttpd spawning tsgi with bin-path, and
// tsgi on its own over TCP) and mod_cgi, what a broken installation leaves in
// the error log, and the environ lighttpd sends at "/" with and without
// fix-root-scriptname and broken-scriptfilename. Needs `npm run build` first.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BROKEN_APP,
  BROKEN_APP_LINE,
  environFor,
  example,
  fetchHttp,
  httpCell,
  MATRIX_APP,
  MATRIX_GET,
  MATRIX_PATH_INFO,
  matrixTests,
  readText,
  serverWritableDir,
  waitForLog,
  writeFile,
} from "./helpers/frontends.js";
import { startLighttpd, type Lighttpd } from "./helpers/lighttpd.js";
import { ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { findBinary } from "./helpers/available.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";

const lighttpdBinary = findBinary("lighttpd", "lighttpd");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/**
 * lighttpd with examples/deploy/lighttpd/tsgi-fastcgi.conf at /app: it spawns
 * tsgi-fcgi.sh (filled with `wrapper`), whose stderr goes to lighttpd's error log.
 */
async function startSpawning(wrapper: Record<string, string>): Promise<Lighttpd> {
  const { dir, config } = spawningSetup(wrapper);
  return startLighttpd(group, lighttpdBinary!, dir, [config]);
}

function spawningSetup(wrapper: Record<string, string>): {
  dir: string;
  config: string;
  errorLog: string;
} {
  const dir = tempDir(group, "tsgi-lighttpd-");
  const scriptDir = join(dir, "bin");
  mkdirSync(scriptDir, { mode: 0o755 });
  // lighttpd creates the socket as its own user, after dropping privileges.
  const socketDir = serverWritableDir(join(dir, "sockets"));
  const errorLog = join(dir, "log", "error.log");
  writeFile(
    join(scriptDir, "tsgi-fcgi.sh"),
    example("lighttpd", "tsgi-fcgi.sh", {
      NODE: process.execPath,
      TSGI: TSGI_BIN,
      APP: MATRIX_APP,
      ERRORLOG: errorLog,
      ...wrapper,
    }),
    0o755,
  );
  const config = example("lighttpd", "tsgi-fastcgi.conf", {
    PREFIX: "/app",
    SOCKET: join(socketDir, "tsgi.sock"),
    SCRIPT_DIR: scriptDir,
  });
  return { dir, config, errorLog };
}

/**
 * Starts lighttpd on a broken setup. lighttpd binds its port, then spawns
 * bin-path and goes down when the program exits at once ("gw-backend failed
 * to start"); a program that fails a little later (node loading a module) gets
 * it started, answering 500 or 503. Either way the error log must say why.
 */
async function brokenSpawning(
  wrapper: Record<string, string>,
  why: RegExp | string,
): Promise<() => string> {
  const { dir, config, errorLog } = spawningSetup(wrapper);
  const readLog = () => readText(errorLog);
  const refusedToStart = () => {
    const log = readLog();
    expect(log).toMatch(/gw-backend failed to start/);
    expect(log).toMatch(why);
    return readLog;
  };
  let lighttpd: Lighttpd;
  try {
    lighttpd = await startLighttpd(group, lighttpdBinary!, dir, [config]);
  } catch {
    return refusedToStart();
  }
  let status: number | undefined;
  try {
    status = (await fetchHttp(lighttpd.url("/app/env"))).status;
  } catch {
    // It was listening, and went down once the spawned program had exited.
  }
  if (status === undefined) {
    await lighttpd.proc.waitForExit(10_000);
    return refusedToStart();
  }
  expect([500, 503]).toContain(status);
  await waitForLog(readLog, why);
  return readLog;
}

describe.skipIf(!lighttpdBinary)(
  "lighttpd mod_fastcgi spawning tsgi (bin-path), examples/deploy/lighttpd/tsgi-fastcgi.conf",
  () => {
    let lighttpd: Lighttpd;

    beforeAll(async () => {
      lighttpd = await startSpawning({});
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => lighttpd.errorLog(),
      }),
    );

    it("only /app and /app/… reach tsgi: /apple is lighttpd's own 404", async () => {
      const result = await fetchHttp(lighttpd.url("/apple/env"));
      expect(result.status).toBe(404);
      expect(result.body.toString("utf8")).not.toContain("environ");
    });
  },
);

describe.skipIf(!lighttpdBinary)(
  "lighttpd mod_fastcgi to tsgi on TCP (host/port), examples/deploy/lighttpd/tsgi-fastcgi-tcp.conf",
  () => {
    let lighttpd: Lighttpd;
    let tsgi: TsgiFcgi;

    beforeAll(async () => {
      tsgi = await startTsgiFcgi(group, { app: MATRIX_APP, listen: "tcp" });
      const { host, port } = tsgi.address as { host: string; port: number };
      const config = example("lighttpd", "tsgi-fastcgi-tcp.conf", {
        PREFIX: "/app",
        HOST: host,
        PORT: String(port),
      });
      lighttpd = await startLighttpd(group, lighttpdBinary!, tempDir(group, "tsgi-lighttpd-"), [
        config,
      ]);
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => tsgi.proc.stderr,
      }),
    );
  },
);

describe.skipIf(!lighttpdBinary)(
  "lighttpd mod_cgi, examples/deploy/lighttpd/tsgi-cgi.conf with ../apache-cgi/app.cgi",
  () => {
    let lighttpd: Lighttpd;
    let breakageLog: string;

    beforeAll(async () => {
      const dir = tempDir(group, "tsgi-lighttpd-cgi-");
      const cgiDir = join(dir, "cgi-bin");
      mkdirSync(cgiDir, { mode: 0o755 });
      writeFile(
        join(cgiDir, "app.cgi"),
        example("apache-cgi", "app.cgi", {
          NODE: process.execPath,
          TSGI: TSGI_BIN,
          APP: MATRIX_APP,
        }),
        0o755,
      );
      breakageLog = join(serverWritableDir(join(dir, "log")), "cgi-stderr.log");
      const config = example("lighttpd", "tsgi-cgi.conf", {
        PREFIX: "/app",
        CGI_DIR: cgiDir,
        BREAKAGELOG: breakageLog,
      });
      lighttpd = await startLighttpd(group, lighttpdBinary!, dir, [config]);
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "/app",
        persistent: false,
        errorLog: () => readText(breakageLog),
      }),
    );
  },
);

describe.skipIf(!lighttpdBinary)(
  "what a broken installation leaves in lighttpd's error log (bin-path through tsgi-fcgi.sh)",
  () => {
    it("a module that fails to load: tsgi's `cannot load application module … configuration file missing`", async () => {
      const readLog = await brokenSpawning({ APP: BROKEN_APP }, BROKEN_APP_LINE);
      // lighttpd's own line says only that the child exited; tsgi's says why.
      await waitForLog(readLog, /child exited: 1/);
    });

    it("node missing: the wrapper's `tsgi: node not found at …`", async () => {
      await brokenSpawning(
        { NODE: "/nonexistent/bin/node" },
        "tsgi: node not found at /nonexistent/bin/node",
      );
    });
  },
);

describe.skipIf(!lighttpdBinary)(
  "what lighttpd's mod_fastcgi sends for other mount points (recorded)",
  () => {
    let lighttpd: Lighttpd;
    const cell = { request: (path: string) => fetchHttp(lighttpd.url(path)) };

    beforeAll(async () => {
      const tsgi = await startTsgiFcgi(group, { app: MATRIX_APP, listen: "tcp" });
      const { host, port } = tsgi.address as { host: string; port: number };
      const backend = (options: string) =>
        `(( "host" => "${host}", "port" => ${port}, "check-local" => "disable"${options} ))`;
      const config = `server.modules += ( "mod_fastcgi" )
$HTTP["url"] =~ "^/fixed/" {
    fastcgi.server = ( "/" => ${backend(`, "fix-root-scriptname" => "enable"`)} )
}
else $HTTP["url"] =~ "^/bsf(/|$)" {
    fastcgi.server = ( "/bsf" => ${backend(`, "broken-scriptfilename" => "enable"`)} )
}
else $HTTP["url"] =~ "^/pfx" {
    fastcgi.server = ( "/pfx" => ${backend("")} )
}
else {
    fastcgi.server = ( "/" => ${backend("")} )
}
`;
      lighttpd = await startLighttpd(group, lighttpdBinary!, tempDir(group, "tsgi-lighttpd-"), [
        config,
      ]);
    });

    it('at "/": the first path segment as SCRIPT_NAME, the rest as PATH_INFO', async () => {
      const environ = await environFor(cell, MATRIX_GET);
      expect([environ.SCRIPT_NAME, environ.PATH_INFO, environ.REQUEST_URI]).toEqual([
        "/env",
        MATRIX_PATH_INFO.slice("/env".length),
        MATRIX_GET,
      ]);
    });

    it('at "/" with "fix-root-scriptname" => "enable": SCRIPT_NAME empty, the whole path as PATH_INFO', async () => {
      const environ = await environFor(cell, "/fixed" + MATRIX_GET);
      expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["", "/fixed" + MATRIX_PATH_INFO]);
    });

    it('"broken-scriptfilename" => "enable" changes only SCRIPT_FILENAME (document root + the whole path)', async () => {
      const environ = await environFor(cell, "/bsf" + MATRIX_GET);
      expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/bsf", MATRIX_PATH_INFO]);
      expect(environ.SCRIPT_FILENAME).toBe(
        join(lighttpd.dir, "htdocs") + "/bsf" + MATRIX_PATH_INFO,
      );
    });

    it('a prefix also takes longer names: /pfx serves /pfxle/env with SCRIPT_NAME=/pfxle (hence the example\'s $HTTP["url"] condition)', async () => {
      const environ = await environFor(cell, "/pfxle/env");
      expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/pfxle", "/env"]);
    });
  },
);
