// What test/frontends-scgi.test.ts and frontends-uwsgi.test.ts share: `tsgi
// scgi` / `tsgi uwsgi` with the matrix app, the placeholders of their deploy
// examples, and the checks that are the same for both protocols (an nginx
// location at a prefix, the socket on fd 0, what each front end answers and
// logs when tsgi is not running).

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  environFor,
  example,
  expectFirstEventEarly,
  fetchHttp,
  httpCell,
  MATRIX_APP,
  MATRIX_GET,
  MATRIX_PATH_INFO,
  matrixTests,
  postChunkedUpload,
  randomUpload,
  waitForLog,
} from "./frontends.js";
import { findBinary, findFile } from "./available.js";
import { startApache, type Apache } from "./apache.js";
import { startLighttpd } from "./lighttpd.js";
import { startNginxSite, type Nginx } from "./nginx.js";
import { freePort, sleep, tempDir, type ProcessGroup } from "./processes.js";
import { startTsgiOnFd0, startTsgiServer, type TsgiFcgi } from "./tsgi.js";

export type StreamProtocol = "scgi" | "uwsgi";

/** The web servers a test file found (undefined: not installed, see available.js). */
export interface FrontEndBinaries {
  nginx?: string;
  apache?: string;
  /** Apache's modules directory, and whether mod_proxy_<protocol> is in it. */
  apacheModules: string;
  apacheModule?: string;
  lighttpd?: string;
  spawnFcgi?: string;
}

/** The web servers and tools the tests of `protocol` need, under the policy of available.js. */
export function findFrontEnds(protocol: StreamProtocol): FrontEndBinaries {
  const apache = findBinary("apache2", "apache2");
  const apacheModules = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
  return {
    nginx: findBinary("nginx", "nginx"),
    apache,
    apacheModules,
    apacheModule: apache
      ? findFile(join(apacheModules, `mod_proxy_${protocol}.so`), "apache2-bin")
      : undefined,
    lighttpd: findBinary("lighttpd", "lighttpd"),
    spawnFcgi: findBinary("spawn-fcgi", "spawn-fcgi"),
  };
}

/** `tsgi <protocol>` with the matrix app; a unix socket any web server user may open (666), or TCP. */
export function startGateway(
  group: ProcessGroup,
  protocol: StreamProtocol,
  listen: "unix" | "tcp",
): Promise<TsgiFcgi> {
  return startTsgiServer(group, protocol, {
    app: MATRIX_APP,
    listen,
    args: listen === "unix" ? ["--socket-mode", "666"] : [],
  });
}

export const socketOf = (tsgi: TsgiFcgi): string => (tsgi.address as { path: string }).path;

/** The @HOST@ and @PORT@ of an example for tsgi on TCP. */
export function hostPortOf(tsgi: TsgiFcgi): { HOST: string; PORT: string } {
  const { host, port } = tsgi.address as { host: string; port: number };
  return { HOST: host, PORT: String(port) };
}

/** The path variables an environ holds, for the recorded tables (toEqual ignores the absent ones). */
export function paths(environ: Record<string, string>): Record<string, string | undefined> {
  return {
    SCRIPT_NAME: environ.SCRIPT_NAME,
    PATH_INFO: environ.PATH_INFO,
    REQUEST_URI: environ.REQUEST_URI,
    DOCUMENT_URI: environ.DOCUMENT_URI,
  };
}

/** The `location` block of a filled nginx example, to put in another server block. */
export function locationOf(site: string): string {
  const start = site.indexOf("\n    location ");
  const end = site.lastIndexOf("\n    }");
  if (start < 0 || end < start) throw new Error(`no location block in:\n${site}`);
  return site.slice(start + 1, end + "\n    }".length);
}

/** nginx serving examples/deploy/nginx-<protocol>/<file> with `values` (and its own @LISTEN@). */
export function startNginxExample(
  group: ProcessGroup,
  binary: string,
  protocol: StreamProtocol,
  file: string,
  values: Record<string, string>,
): Promise<Nginx> {
  return startNginxSite(group, binary, (listen) =>
    example(`nginx-${protocol}`, file, { ...values, LISTEN: listen }),
  );
}

/**
 * The checks of an nginx example mounted at /app, inside the current
 * describe(): /app, /app/ and /apple; a %0A in the path; a chunked upload;
 * nothing in nginx's error log.
 */
export function nginxPrefixTests(nginx: () => Nginx): void {
  const cell = { request: (path: string) => fetchHttp(nginx().url(path)) };

  it("/app itself and /app/ are the application (PATH_INFO empty and /), /apple is not", async () => {
    const bare = await environFor(cell, "/app?x=1");
    expect([bare.SCRIPT_NAME, bare.PATH_INFO, bare.QUERY_STRING]).toEqual(["/app", "", "x=1"]);
    const slash = await environFor(cell, "/app/");
    expect([slash.SCRIPT_NAME, slash.PATH_INFO]).toEqual(["/app", "/"]);
    expect((await fetchHttp(nginx().url("/apple/env"))).status).toBe(404);
  });

  it("a %0A in the path still splits (the (?s) in the location)", async () => {
    const environ = await environFor(cell, "/app/env/a%0Ab");
    expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/app", "/env/a\nb"]);
  });

  it("a chunked upload (no Content-Length) arrives whole: nginx buffers it whatever *_request_buffering says, and sends its length", async () => {
    const total = 3 * 1024 * 1024 + 5;
    const { reported, sent } = await postChunkedUpload(nginx().url("/app/sha256"), total);
    expect(reported).toEqual({ ...sent, contentLength: String(total) });
  });

  it("nginx logged nothing at level error or worse (but the /apple 404 above)", () => {
    expect(
      nginx()
        .errorLines()
        .filter((line) => !line.includes("/apple/env")),
    ).toEqual([]);
  });
}

/** tsgi on a socket it inherits on fd 0 (examples/deploy/systemd), behind the nginx example. */
export function fd0Tests(group: ProcessGroup, protocol: StreamProtocol, found: FrontEndBinaries) {
  describe.skipIf(!found.nginx || !found.spawnFcgi)(
    `tsgi ${protocol} on a socket inherited on fd 0 (no --listen, as under systemd's socket activation), behind examples/deploy/nginx-${protocol}`,
    () => {
      it("serves the request matrix's GET", async () => {
        const tsgi = await startTsgiOnFd0(group, protocol, found.spawnFcgi!, MATRIX_APP);
        const nginx = await startNginxExample(
          group,
          found.nginx!,
          protocol,
          `tsgi-${protocol}.conf`,
          {
            SOCKET: socketOf(tsgi),
            PREFIX: "/app",
          },
        );
        const environ = await environFor(
          { request: (path) => fetchHttp(nginx.url(path)) },
          "/app" + MATRIX_GET,
        );
        expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/app", MATRIX_PATH_INFO]);
        expect(tsgi.proc.stderr).toMatch(/serving /);
      });
    },
  );
}

/**
 * What each front end answers and logs, configured from its example, when
 * tsgi is not running: no socket file, nothing listening on the port.
 */
export function notRunningTests(
  group: ProcessGroup,
  protocol: StreamProtocol,
  found: FrontEndBinaries,
): void {
  /** The module's name in Apache's lines, and the number of its "failed to make connection" line. */
  const apacheName = protocol === "scgi" ? "SCGI" : "uwsgi";
  const apacheLine = protocol === "scgi" ? "AH00866" : "AH10101";
  const missingSocket = () => join(tempDir(group, "tsgi-not-running-"), "not-running.sock");

  describe(`when tsgi ${protocol} is not running`, () => {
    it.skipIf(!found.nginx)(
      "nginx: 502, and `connect() to unix:… failed (2: No such file or directory)`",
      async () => {
        const socket = missingSocket();
        const nginx = await startNginxExample(
          group,
          found.nginx!,
          protocol,
          `tsgi-${protocol}.conf`,
          {
            SOCKET: socket,
            PREFIX: "/app",
          },
        );
        expect((await fetchHttp(nginx.url("/app/env"))).status).toBe(502);
        await waitForLog(
          () => nginx.errorLog(),
          `connect() to unix:${socket} failed (2: No such file or directory) while connecting to upstream`,
        );
      },
    );

    it.skipIf(!found.apache || !found.apacheModule)(
      `Apache: 503, and \`AH02454: ${apacheName}: attempt to connect to Unix domain socket … failed\` / \`AH00957: … (111)Connection refused\``,
      async () => {
        const socket = missingSocket();
        const port = String(await freePort());
        const apache = await startApache(group, found.apache!, found.apacheModules, {
          dir: tempDir(group, `tsgi-apache-proxy-${protocol}-`),
          mpm: "event",
          modules: ["proxy", `proxy_${protocol}`],
          config: [
            example(`apache-proxy-${protocol}`, `tsgi-proxy-${protocol}.conf`, {
              PREFIX: "/app",
              SOCKET: socket,
            }),
            example(`apache-proxy-${protocol}`, `tsgi-proxy-${protocol}-tcp.conf`, {
              PREFIX: "/app-tcp",
              HOST: "127.0.0.1",
              PORT: port,
            }),
          ].join("\n"),
        });
        expect((await fetchHttp(apache.url("/app/env"))).status).toBe(503);
        await waitForLog(
          () => apache.errorLog(),
          `(2)No such file or directory: AH02454: ${apacheName}: attempt to connect to Unix domain socket ${socket}`,
        );
        expect((await fetchHttp(apache.url("/app-tcp/env"))).status).toBe(503);
        await waitForLog(
          () => apache.errorLog(),
          `(111)Connection refused: AH00957: ${apacheName}: attempt to connect to 127.0.0.1:${port}`,
        );
        expect(apache.errorLog()).toContain(`${apacheLine}: failed to make connection to backend`);
      },
    );

    it.skipIf(!found.lighttpd)(
      "lighttpd: 503, and `establishing connection failed: socket: …` then `all handlers for /app? on /app are down.`",
      async () => {
        const socket = missingSocket();
        const port = String(await freePort());
        const lighttpd = await startLighttpd(
          group,
          found.lighttpd!,
          tempDir(group, "tsgi-lighttpd-"),
          [
            example("lighttpd-scgi", `tsgi-${protocol}.conf`, {
              PREFIX: "/app",
              HOST: "127.0.0.1",
              PORT: port,
              SOCKET: socket,
            }),
          ],
        );
        expect((await fetchHttp(lighttpd.url("/app/env"))).status).toBe(503);
        const where =
          protocol === "scgi"
            ? `tcp:127.0.0.1:${port}: Connection refused`
            : `unix:${socket}: No such file or directory`;
        await waitForLog(
          () => lighttpd.errorLog(),
          `establishing connection failed: socket: ${where}`,
        );
        await waitForLog(() => lighttpd.errorLog(), "all handlers for /app? on /app are down.");
      },
    );
  });
}

export interface ApacheExample {
  apache: Apache;
  /** tsgi behind tsgi-proxy-<protocol>.conf at /app, and behind the -tcp.conf at /app-tcp. */
  unixTsgi: TsgiFcgi;
  tcpTsgi: TsgiFcgi;
}

/**
 * The checks of Apache configured from examples/deploy/apache-proxy-<protocol>,
 * inside the current describe(): the request matrix over the unix socket and
 * TCP; SCRIPT_NAME and PATH_INFO for the prefix itself (`bare`) and with a
 * slash (`slash`), which the two modules send differently; a chunked upload
 * (411); a Server-Sent Events stream.
 */
export function apacheExampleTests(
  protocol: StreamProtocol,
  servers: () => ApacheExample,
  how: { unix: string; tcp: string },
  atMount: { bare: [string, string]; slash: [string, string] },
): void {
  const url = (path: string) => servers().apache.url(path);
  const cell = { request: (path: string) => fetchHttp(url(path)) };

  describe(`unix socket: ${how.unix} (tsgi-proxy-${protocol}.conf)`, () => {
    matrixTests(() =>
      httpCell(() => url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => servers().unixTsgi.proc.stderr,
      }),
    );
  });

  describe(`TCP: ${how.tcp} (tsgi-proxy-${protocol}-tcp.conf)`, () => {
    matrixTests(() =>
      httpCell(() => url(""), {
        mount: "/app-tcp",
        persistent: true,
        errorLog: () => servers().tcpTsgi.proc.stderr,
      }),
    );

    it(`/app-tcp is the application (SCRIPT_NAME ${JSON.stringify(atMount.bare[0])}, PATH_INFO ${JSON.stringify(atMount.bare[1])}), /app-tcp/ too (${JSON.stringify(atMount.slash[0])}, ${JSON.stringify(atMount.slash[1])}), /app-tcple is not`, async () => {
      const bare = await environFor(cell, "/app-tcp?x=1");
      expect([bare.SCRIPT_NAME, bare.PATH_INFO, bare.QUERY_STRING]).toEqual([
        ...atMount.bare,
        "x=1",
      ]);
      const slash = await environFor(cell, "/app-tcp/");
      expect([slash.SCRIPT_NAME, slash.PATH_INFO]).toEqual(atMount.slash);
      // Not proxied: Apache's own answer (this test's document root is denied).
      expect((await fetchHttp(url("/app-tcple/env"))).status).toBe(403);
    });

    it("recorded: SCRIPT_NAME the prefix, PATH_INFO the decoded rest", async () => {
      expect(paths(await environFor(cell, "/app-tcp" + MATRIX_GET))).toEqual({
        SCRIPT_NAME: "/app-tcp",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app-tcp" + MATRIX_GET,
      });
    });

    it("a chunked upload (no Content-Length): Apache answers 411 itself and tsgi logs nothing", async () => {
      const { tcpTsgi } = servers();
      const before = tcpTsgi.proc.stderr;
      const upload = randomUpload(64 * 1024, 16 * 1024);
      const result = await fetchHttp(url("/app-tcp/sha256"), { method: "POST", body: upload.body });
      expect(result.status).toBe(411);
      await sleep(200);
      expect(tcpTsgi.proc.stderr.slice(before.length)).toBe("");
    });

    it("a response streams through: the first Server-Sent Event arrives before the stream ends", async () => {
      await expectFirstEventEarly(url("/app-tcp/sse"));
    });
  });
}
