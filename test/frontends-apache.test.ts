// tsgi behind a real Apache httpd 2.4, configured from the files in
// examples/deploy/ (apache-cgi, apache-fcgid, apache-proxy-fcgi): the request
// matrix for every way Apache can run it, the environ each one sends, and the
// error-log lines a broken installation leaves. Needs `npm run build` first.

import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BROKEN_APP,
  BROKEN_APP_LINE,
  DEPLOY,
  environFor,
  example,
  fetchHttp,
  httpCell,
  MATRIX_APP,
  MATRIX_GET,
  MATRIX_PATH_INFO,
  matrixTests,
  waitForLog,
  writeFile,
} from "./helpers/frontends.js";
import { findBinary, findFile } from "./helpers/available.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { freePort, ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";
import { startTsgiFcgi, type TsgiFcgi } from "./helpers/tsgi.js";
import { parseReport } from "./helpers/reports.js";

const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const fcgidModule = apacheBinary
  ? findFile(join(MODULES, "mod_fcgid.so"), "libapache2-mod-fcgid")
  : undefined;

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** The wrapper scripts' placeholders for the node running these tests and this checkout. */
const wrapperValues = (app: string) => ({ NODE: process.execPath, TSGI: TSGI_BIN, APP: app });

// ---------------------------------------------------------------------------
// CGI: examples/deploy/apache-cgi (ScriptAlias and .htaccess), under mod_cgid and mod_cgi

const CGI_SETUPS = [
  { mpm: "event", cgiModule: "cgid" },
  { mpm: "prefork", cgiModule: "cgi" },
] as const;

for (const { mpm, cgiModule } of CGI_SETUPS)
  describe.skipIf(!apacheBinary)(
    `Apache mpm_${mpm} + mod_${cgiModule}, examples/deploy/apache-cgi`,
    () => {
      let apache: Apache;

      beforeAll(async () => {
        const dir = tempDir(group, `tsgi-apache-${cgiModule}-`);
        const cgiDir = join(dir, "cgi-bin");
        const site = join(dir, "htdocs", "site");
        for (const path of [cgiDir, site]) mkdirSync(path, { recursive: true, mode: 0o755 });
        const wrapper = example("apache-cgi", "app.cgi", wrapperValues(MATRIX_APP));
        writeFile(join(cgiDir, "app.cgi"), wrapper, 0o755);
        writeFile(join(site, "app.cgi"), wrapper, 0o755);
        copyFileSync(join(DEPLOY, "apache-cgi", ".htaccess"), join(site, ".htaccess"));
        apache = await startApache(group, apacheBinary!, MODULES, {
          dir,
          mpm,
          modules: [cgiModule, "alias", "mime", "dir"],
          config: [
            example("apache-cgi", "tsgi-cgi.conf", { CGI_DIR: cgiDir }),
            `<Directory "${join(dir, "htdocs")}">`,
            // What the README says the .htaccess needs.
            "    AllowOverride Options FileInfo Indexes",
            "    Require all granted",
            "</Directory>",
          ].join("\n"),
        });
      });

      describe("ScriptAlias /app (tsgi-cgi.conf)", () => {
        matrixTests(() =>
          httpCell(() => apache.url(""), {
            mount: "/app",
            persistent: false,
            errorLog: () => apache.errorLog(),
          }),
        );
      });

      describe(".htaccess with AddHandler cgi-script", () => {
        // The .htaccess leaves CGIPassAuth commented out (it needs AllowOverride AuthConfig): Apache drops Authorization.
        matrixTests(() =>
          httpCell(() => apache.url(""), {
            mount: "/site/app.cgi",
            persistent: false,
            errorLog: () => apache.errorLog(),
            passesAuthorization: false,
          }),
        );
      });
    },
  );

// ---------------------------------------------------------------------------
// mod_fcgid: examples/deploy/apache-fcgid

describe.skipIf(!apacheBinary || !fcgidModule)(
  "Apache mpm_event + mod_fcgid, examples/deploy/apache-fcgid",
  () => {
    let apache: Apache;

    beforeAll(async () => {
      const dir = tempDir(group, "tsgi-apache-fcgid-");
      const fcgiDir = join(dir, "fcgi-bin");
      const site = join(dir, "htdocs", "site");
      for (const path of [fcgiDir, site]) mkdirSync(path, { recursive: true, mode: 0o755 });
      // One copy of the example config per location, each with its own wrapper: the working one and the broken ones.
      const locations: { prefix: string; wrapper: Record<string, string>; mode?: number }[] = [
        { prefix: "/app", wrapper: wrapperValues(MATRIX_APP) },
        { prefix: "/bad-app", wrapper: wrapperValues(BROKEN_APP) },
        {
          prefix: "/no-node",
          wrapper: { ...wrapperValues(MATRIX_APP), NODE: "/nonexistent/bin/node" },
        },
        // Unreadable for the user Apache runs it as (mode 000: even for its owner, unless root).
        { prefix: "/private-wrapper", wrapper: wrapperValues(MATRIX_APP), mode: 0o000 },
        {
          prefix: "/private-app",
          wrapper: wrapperValues(
            writeFile(join(dir, "private-app.js"), "export default () => {};\n", 0o000),
          ),
        },
      ];
      const config: string[] = [];
      for (const { prefix, wrapper, mode } of locations) {
        const wrapperDir = join(fcgiDir, prefix.slice(1));
        mkdirSync(wrapperDir, { mode: 0o755 });
        writeFile(
          join(wrapperDir, "app.fcgi"),
          example("apache-fcgid", "app.fcgi", wrapper),
          mode ?? 0o755,
        );
        config.push(
          example("apache-fcgid", "tsgi-fcgid.conf", { PREFIX: prefix, FCGI_DIR: wrapperDir }),
        );
      }
      writeFile(
        join(site, "app.fcgi"),
        example("apache-fcgid", "app.fcgi", wrapperValues(MATRIX_APP)),
        0o755,
      );
      copyFileSync(join(DEPLOY, "apache-fcgid", ".htaccess"), join(site, ".htaccess"));
      config.push(
        `<Directory "${join(dir, "htdocs")}">`,
        // What the README says the .htaccess needs.
        "    AllowOverride Options FileInfo Indexes AuthConfig",
        "    Require all granted",
        "</Directory>",
      );
      apache = await startApache(group, apacheBinary!, MODULES, {
        dir,
        mpm: "event",
        modules: ["fcgid", "mime", "dir"],
        config: config.join("\n"),
      });
    });

    describe("FcgidWrapper in <Location /app> (tsgi-fcgid.conf)", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/app",
          persistent: true,
          errorLog: () => apache.errorLog(),
        }),
      );
    });

    describe(".htaccess with AddHandler fcgid-script", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/site/app.fcgi",
          persistent: true,
          errorLog: () => apache.errorLog(),
        }),
      );

      it("the directory's URL runs the application too (DirectoryIndex app.fcgi)", async () => {
        const environ = await environFor(
          { request: (path) => fetchHttp(apache.url(path)) },
          "/site/",
        );
        expect(environ.SCRIPT_NAME).toBe("/site/app.fcgi");
      });
    });

    describe("what a broken installation leaves in Apache's error log", () => {
      it("a module that fails to load: a 500, and tsgi's `cannot load application module … configuration file missing`", async () => {
        const result = await fetchHttp(apache.url("/bad-app/x"));
        expect(result.status).toBe(500);
        expect(await waitForLog(() => apache.errorLog(), BROKEN_APP_LINE)).toMatch(BROKEN_APP_LINE);
      });

      it("node missing: a 500, and the wrapper's `tsgi: node not found at …`", async () => {
        const result = await fetchHttp(apache.url("/no-node/x"));
        expect(result.status).toBe(500);
        await waitForLog(() => apache.errorLog(), "tsgi: node not found at /nonexistent/bin/node");
      });

      it("the wrapper not readable by Apache's user: a 500, and sh's `cannot open …/app.fcgi: Permission denied`", async () => {
        const result = await fetchHttp(apache.url("/private-wrapper/x"));
        expect(result.status).toBe(500);
        await waitForLog(
          () => apache.errorLog(),
          /cannot open \S*private-wrapper\/app\.fcgi: Permission denied/,
        );
      });

      it("the application module not readable by Apache's user: a 500, and `tsgi: application module … is missing or not readable by …`", async () => {
        const result = await fetchHttp(apache.url("/private-app/x"));
        expect(result.status).toBe(500);
        await waitForLog(
          () => apache.errorLog(),
          /tsgi: application module \S*private-app\.js is missing or not readable by \w+/,
        );
      });
    });
  },
);

// ---------------------------------------------------------------------------
// mod_proxy_fcgi: examples/deploy/apache-proxy-fcgi, tsgi on a unix socket and on TCP

describe.skipIf(!apacheBinary)(
  "Apache mpm_event + mod_proxy_fcgi, examples/deploy/apache-proxy-fcgi",
  () => {
    let apache: Apache;
    let unixTsgi: TsgiFcgi;
    let tcpTsgi: TsgiFcgi;
    let otherTsgi: TsgiFcgi;

    beforeAll(async () => {
      // 666: Apache's workers run as nobody when we are root and must reach the socket.
      [unixTsgi, tcpTsgi, otherTsgi] = await Promise.all([
        startTsgiFcgi(group, { app: MATRIX_APP, listen: "unix", args: ["--socket-mode", "666"] }),
        startTsgiFcgi(group, { app: MATRIX_APP, listen: "tcp" }),
        startTsgiFcgi(group, { app: MATRIX_APP, listen: "unix", args: ["--socket-mode", "666"] }),
      ]);
      const socket = (unixTsgi.address as { path: string }).path;
      const otherSocket = (otherTsgi.address as { path: string }).path;
      const tcp = tcpTsgi.address as { host: string; port: number };
      const dir = tempDir(group, "tsgi-apache-proxy-fcgi-");
      apache = await startApache(group, apacheBinary!, MODULES, {
        dir,
        mpm: "event",
        modules: ["proxy", "proxy_fcgi"],
        config: [
          example("apache-proxy-fcgi", "tsgi-proxy-fcgi.conf", { PREFIX: "/app", SOCKET: socket }),
          example("apache-proxy-fcgi", "tsgi-proxy-fcgi-tcp.conf", {
            PREFIX: "/app-tcp",
            HOST: tcp.host,
            PORT: String(tcp.port),
          }),
          // What mod_proxy_fcgi sends without the example's ProxyFCGISetEnvIf lines, recorded below.
          `ProxyPass "/raw" "unix:${socket}|fcgi://localhost"`,
          `<Location "/generic">`,
          `    ProxyPass "unix:${socket}|fcgi://localhost/"`,
          "    ProxyFCGIBackendType GENERIC",
          "</Location>",
          `<Location "/handler">`,
          `    SetHandler "proxy:unix:${socket}|fcgi://localhost/"`,
          "</Location>",
          // A second application on its own socket: once behind the same fcgi://localhost/, once under its own name.
          `ProxyPass "/second-shared" "unix:${otherSocket}|fcgi://localhost/"`,
          `ProxyPass "/second-named" "unix:${otherSocket}|fcgi://second-app/"`,
          `<Directory "${join(dir, "htdocs")}">`,
          "    Require all granted",
          "</Directory>",
        ].join("\n"),
      });
    });

    describe("unix socket: ProxyPass unix:…|fcgi://localhost/ (tsgi-proxy-fcgi.conf)", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/app",
          persistent: true,
          errorLog: () => unixTsgi.proc.stderr,
        }),
      );
    });

    describe("TCP: ProxyPass fcgi://127.0.0.1:port/ (tsgi-proxy-fcgi-tcp.conf)", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/app-tcp",
          persistent: true,
          errorLog: () => tcpTsgi.proc.stderr,
        }),
      );
    });

    describe("what mod_proxy_fcgi sends without the fix (the example's ProxyFCGISetEnvIf lines)", () => {
      const cell = { request: (path: string) => fetchHttp(apache.url(path)) };

      it("ProxyPass: the whole decoded path as SCRIPT_NAME, PATH_INFO empty", async () => {
        const environ = await environFor(cell, "/raw" + MATRIX_GET);
        expect([environ.SCRIPT_NAME, environ.PATH_INFO, environ.REQUEST_URI]).toEqual([
          "/raw" + MATRIX_PATH_INFO,
          "",
          "/raw" + MATRIX_GET,
        ]);
      });

      it("ProxyFCGIBackendType GENERIC changes only SCRIPT_FILENAME: SCRIPT_NAME is still the whole path", async () => {
        const environ = await environFor(cell, "/generic" + MATRIX_GET);
        expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual([
          "/generic" + MATRIX_PATH_INFO,
          "",
        ]);
        expect(environ.SCRIPT_FILENAME).toBe("/" + MATRIX_GET.split("?")[0]);
      });

      it("SetHandler proxy:… in <Location>: split where the path leaves the file system (here right after /handler)", async () => {
        const environ = await environFor(cell, "/handler" + MATRIX_GET);
        expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/handler", MATRIX_PATH_INFO]);
      });

      it("two sockets behind the same fcgi://localhost/ share one worker: the second application's requests reach the first", async () => {
        const pidAt = async (path: string) =>
          parseReport((await fetchHttp(apache.url(path))).body).pid;
        expect(await pidAt("/second-shared/env")).toBe(unixTsgi.proc.pid);
        expect(await pidAt("/second-named/env")).toBe(otherTsgi.proc.pid);
      });
    });
  },
);

describe.skipIf(!apacheBinary)("what Apache mod_proxy_fcgi logs when tsgi is not there", () => {
  let apache: Apache;
  let closedPort: number;

  beforeAll(async () => {
    const dir = tempDir(group, "tsgi-apache-proxy-fcgi-");
    closedPort = await freePort();
    apache = await startApache(group, apacheBinary!, MODULES, {
      dir,
      mpm: "event",
      modules: ["proxy", "proxy_fcgi"],
      config: [
        example("apache-proxy-fcgi", "tsgi-proxy-fcgi.conf", {
          PREFIX: "/app",
          SOCKET: join(dir, "not-running.sock"),
        }),
        example("apache-proxy-fcgi", "tsgi-proxy-fcgi-tcp.conf", {
          PREFIX: "/app-tcp",
          HOST: "127.0.0.1",
          PORT: String(closedPort),
        }),
      ].join("\n"),
    });
  });

  it("no socket file: 503, and `(2)No such file or directory: AH02454: FCGI: attempt to connect to Unix domain socket …`", async () => {
    expect((await fetchHttp(apache.url("/app/env"))).status).toBe(503);
    await waitForLog(
      () => apache.errorLog(),
      /\(2\)No such file or directory: AH02454: FCGI: attempt to connect to Unix domain socket \S*not-running\.sock/,
    );
  });

  it("nothing on the port: 503, and `(111)Connection refused: AH00957: FCGI: attempt to connect to 127.0.0.1:port`", async () => {
    expect((await fetchHttp(apache.url("/app-tcp/env"))).status).toBe(503);
    await waitForLog(
      () => apache.errorLog(),
      `(111)Connection refused: AH00957: FCGI: attempt to connect to 127.0.0.1:${closedPort}`,
    );
  });
});
