// `tsgi uwsgi` behind the real front ends, configured from examples/deploy/
// (nginx-uwsgi, apache-proxy-uwsgi, lighttpd-scgi/tsgi-uwsgi.conf): the request
// matrix for each (unix socket and TCP, under a prefix and for the whole site,
// mounted by a split or by modifier1 30), the environ each server sends
// (recorded where they differ), a 100 MiB upload streamed through nginx with
// uwsgi_request_buffering off, and Server-Sent Events with response buffering
// off. Needs `npm run build` first.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  peakRssKb,
  randomUpload,
  timedGet,
} from "./helpers/frontends.js";
import { findBinary, findFile } from "./helpers/available.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { startLighttpd, type Lighttpd } from "./helpers/lighttpd.js";
import { ProcessGroup, sleep, tempDir } from "./helpers/processes.js";
import { startTsgiOnFd0, startTsgiServer, type TsgiFcgi } from "./helpers/tsgi.js";

const nginxBinary = findBinary("nginx", "nginx");
const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const uwsgiModule = apacheBinary
  ? findFile(join(MODULES, "mod_proxy_uwsgi.so"), "apache2-bin")
  : undefined;
const lighttpdBinary = findBinary("lighttpd", "lighttpd");
const spawnFcgi = findBinary("spawn-fcgi", "spawn-fcgi");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** `tsgi uwsgi` with the matrix app; a unix socket any web server user may open (666), or TCP. */
function startUwsgi(listen: "unix" | "tcp"): Promise<TsgiFcgi> {
  return startTsgiServer(group, "uwsgi", {
    app: MATRIX_APP,
    listen,
    args: listen === "unix" ? ["--socket-mode", "666"] : [],
  });
}

const socketOf = (tsgi: TsgiFcgi) => (tsgi.address as { path: string }).path;
const hostPortOf = (tsgi: TsgiFcgi) => {
  const { host, port } = tsgi.address as { host: string; port: number };
  return { HOST: host, PORT: String(port) };
};

/** The path variables an environ holds, for the recorded tables. */
const paths = (environ: Record<string, string>) => ({
  SCRIPT_NAME: environ.SCRIPT_NAME,
  PATH_INFO: environ.PATH_INFO,
  REQUEST_URI: environ.REQUEST_URI,
});

/** The `location` block of a filled nginx example, to put in another server block. */
function locationOf(site: string): string {
  const start = site.indexOf("\n    location ");
  const end = site.lastIndexOf("\n    }");
  if (start < 0 || end < start) throw new Error(`no location block in:\n${site}`);
  return site.slice(start + 1, end + "\n    }".length);
}

// ---------------------------------------------------------------------------
// nginx: examples/deploy/nginx-uwsgi

describe.skipIf(!nginxBinary)("nginx uwsgi_pass, examples/deploy/nginx-uwsgi", () => {
  let unixTsgi: TsgiFcgi;
  let tcpTsgi: TsgiFcgi;
  let splitNginx: Nginx;
  let modifierNginx: Nginx;
  let rootNginx: Nginx;

  beforeAll(async () => {
    [unixTsgi, tcpTsgi] = await Promise.all([startUwsgi("unix"), startUwsgi("tcp")]);
    [splitNginx, modifierNginx, rootNginx] = await Promise.all([
      startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-uwsgi", "tsgi-uwsgi.conf", {
          SOCKET: socketOf(unixTsgi),
          PREFIX: "/app",
          LISTEN: listen,
        }),
      ),
      startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-uwsgi", "tsgi-uwsgi-tcp.conf", {
          ...hostPortOf(tcpTsgi),
          PREFIX: "/app",
          LISTEN: listen,
        }),
      ),
      startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-uwsgi", "tsgi-uwsgi.conf", {
          SOCKET: socketOf(unixTsgi),
          PREFIX: "",
          LISTEN: listen,
        }),
      ),
    ]);
  });

  describe("unix socket at /app, the split sent as SCRIPT_NAME and PATH_INFO (tsgi-uwsgi.conf)", () => {
    matrixTests(() =>
      httpCell(() => splitNginx.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => unixTsgi.proc.stderr,
      }),
    );

    it("/app itself and /app/ are the application (PATH_INFO empty and /), /apple is not", async () => {
      const cell = { request: (path: string) => fetchHttp(splitNginx.url(path)) };
      const bare = await environFor(cell, "/app?x=1");
      expect([bare.SCRIPT_NAME, bare.PATH_INFO, bare.QUERY_STRING]).toEqual(["/app", "", "x=1"]);
      const slash = await environFor(cell, "/app/");
      expect([slash.SCRIPT_NAME, slash.PATH_INFO]).toEqual(["/app", "/"]);
      expect((await fetchHttp(splitNginx.url("/apple/env"))).status).toBe(404);
    });

    it("a %0A in the path still splits (the (?s) in the location)", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(splitNginx.url(path)) },
        "/app/env/a%0Ab",
      );
      expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/app", "/env/a\nb"]);
    });

    it("a chunked upload (no Content-Length) arrives whole: nginx buffers it whatever uwsgi_request_buffering says, and sends its length", async () => {
      const total = 3 * 1024 * 1024 + 5;
      const upload = randomUpload(total, 256 * 1024);
      const result = await fetchHttp(splitNginx.url("/app/sha256"), {
        method: "POST",
        body: upload.body,
        headers: { "Content-Type": "application/octet-stream" },
      });
      expect(result.status, result.body.toString("utf8")).toBe(200);
      expect(JSON.parse(result.body.toString("utf8"))).toEqual({
        length: total,
        sha256: upload.sha256(),
        contentLength: String(total),
      });
    });

    it("nginx logged nothing at level error or worse (but the /apple 404 above)", () => {
      expect(splitNginx.errorLines().filter((line) => !line.includes("/apple/env"))).toEqual([]);
    });
  });

  describe("TCP at /app with uwsgi_modifier1 30 (tsgi-uwsgi-tcp.conf)", () => {
    matrixTests(() =>
      httpCell(() => modifierNginx.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => tcpTsgi.proc.stderr,
      }),
    );

    it("/app itself and /app/ are the application, /apple is not", async () => {
      const cell = { request: (path: string) => fetchHttp(modifierNginx.url(path)) };
      const bare = await environFor(cell, "/app?x=1");
      expect([bare.SCRIPT_NAME, bare.PATH_INFO]).toEqual(["/app", ""]);
      const slash = await environFor(cell, "/app/");
      expect([slash.SCRIPT_NAME, slash.PATH_INFO]).toEqual(["/app", "/"]);
      expect((await fetchHttp(modifierNginx.url("/apple/env"))).status).toBe(404);
    });
  });

  describe("unix socket for the whole site (tsgi-uwsgi.conf, empty @PREFIX@)", () => {
    matrixTests(() =>
      httpCell(() => rootNginx.url(""), {
        mount: "",
        persistent: true,
        errorLog: () => unixTsgi.proc.stderr,
      }),
    );
  });

  describe("recorded: what nginx sends", () => {
    let nginx: Nginx;

    beforeAll(async () => {
      nginx = await startNginxSite(
        group,
        nginxBinary!,
        (listen) => `server {
    listen ${listen};
    # The stock include alone.
    location /plain/ {
        include uwsgi_params;
        uwsgi_pass unix:${socketOf(unixTsgi)};
    }
    # The example with its response buffering turned off, for streams.
${locationOf(
  example("nginx-uwsgi", "tsgi-uwsgi.conf", {
    SOCKET: socketOf(unixTsgi),
    PREFIX: "/sse",
    LISTEN: "unused",
  }),
).replace("# uwsgi_buffering off;", "uwsgi_buffering off;")}
}
`,
      );
    });

    it("stock uwsgi_params: the whole decoded path as PATH_INFO, no SCRIPT_NAME", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(nginx.url(path)) },
        "/plain" + MATRIX_GET,
      );
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "",
        PATH_INFO: "/plain" + MATRIX_PATH_INFO,
        REQUEST_URI: "/plain" + MATRIX_GET,
      });
      expect(environ.CONTENT_LENGTH).toBe("");
    });

    it("the example's split: SCRIPT_NAME the prefix, PATH_INFO (sent twice, the last counts) the decoded rest", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(splitNginx.url(path)) },
        "/app" + MATRIX_GET,
      );
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "/app",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app" + MATRIX_GET,
      });
    });

    it("uwsgi_modifier1 30: PATH_INFO arrives whole and tsgi takes SCRIPT_NAME off its front", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(modifierNginx.url(path)) },
        "/app" + MATRIX_GET,
      );
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "/app",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app" + MATRIX_GET,
      });
    });

    it("uwsgi_buffering off: the first Server-Sent Event arrives before the stream ends", async () => {
      const result = await expectFirstEventEarly(nginx.url("/sse/sse"));
      expect(result.headers["content-type"]).toBe("text/event-stream");
    });
  });

  describe("a 100 MiB upload through tsgi-uwsgi.conf (uwsgi_request_buffering off)", () => {
    it("reaches the application whole (SHA-256) while tsgi's peak RSS stays under 100 MiB", async () => {
      // Its own tsgi: VmHWM is the peak since the process started.
      const tsgi = await startUwsgi("unix");
      const nginx = await startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-uwsgi", "tsgi-uwsgi.conf", {
          SOCKET: socketOf(tsgi),
          PREFIX: "/app",
          LISTEN: listen,
        }),
      );
      const total = 100 * 1024 * 1024;
      const upload = randomUpload(total);
      const result = await fetchHttp(nginx.url("/app/sha256"), {
        method: "POST",
        body: upload.body,
        headers: { "Content-Length": String(total), "Content-Type": "application/octet-stream" },
        timeoutMs: 60_000,
      });
      expect(result.status, result.body.toString("utf8")).toBe(200);
      expect(JSON.parse(result.body.toString("utf8"))).toEqual({
        length: total,
        sha256: upload.sha256(),
        contentLength: String(total),
      });
      const peakKb = peakRssKb(tsgi.proc.pid);
      console.log(
        `frontends-uwsgi: 100 MiB upload: tsgi peak RSS ${(peakKb / 1024).toFixed(1)} MiB`,
      );
      expect(peakKb, `tsgi's peak RSS was ${(peakKb / 1024).toFixed(1)} MiB`).toBeLessThan(
        100 * 1024,
      );
      // Streamed, not spooled: nginx never wrote the body to a temp file first.
      expect(nginx.errorLog()).not.toMatch(/client request body is buffered to a temporary file/);
    }, 90_000);
  });
});

// ---------------------------------------------------------------------------
// Apache: examples/deploy/apache-proxy-uwsgi

describe.skipIf(!apacheBinary || !uwsgiModule)(
  "Apache mpm_event + mod_proxy_uwsgi, examples/deploy/apache-proxy-uwsgi",
  () => {
    let apache: Apache;
    let unixTsgi: TsgiFcgi;
    let tcpTsgi: TsgiFcgi;

    beforeAll(async () => {
      [unixTsgi, tcpTsgi] = await Promise.all([startUwsgi("unix"), startUwsgi("tcp")]);
      const tcp = hostPortOf(tcpTsgi);
      apache = await startApache(group, apacheBinary!, MODULES, {
        dir: tempDir(group, "tsgi-apache-proxy-uwsgi-"),
        mpm: "event",
        modules: ["proxy", "proxy_uwsgi"],
        config: [
          example("apache-proxy-uwsgi", "tsgi-proxy-uwsgi.conf", {
            PREFIX: "/app",
            SOCKET: socketOf(unixTsgi),
          }),
          example("apache-proxy-uwsgi", "tsgi-proxy-uwsgi-tcp.conf", {
            PREFIX: "/app-tcp",
            ...tcp,
          }),
          // The short form, recorded below.
          `ProxyPass "/short" "uwsgi://${tcp.HOST}:${tcp.PORT}/"`,
        ].join("\n"),
      });
    });

    describe("unix socket: ProxyPass unix:…|uwsgi://localhost/ (tsgi-proxy-uwsgi.conf)", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/app",
          persistent: true,
          errorLog: () => unixTsgi.proc.stderr,
        }),
      );
    });

    describe("TCP: ProxyPass uwsgi://127.0.0.1:port/ (tsgi-proxy-uwsgi-tcp.conf)", () => {
      matrixTests(() =>
        httpCell(() => apache.url(""), {
          mount: "/app-tcp",
          persistent: true,
          errorLog: () => tcpTsgi.proc.stderr,
        }),
      );

      it("/app-tcp and /app-tcp/ are the application (mod_proxy_uwsgi sends PATH_INFO / for both, and /app-tcp/ as SCRIPT_NAME for the second), /app-tcple is not", async () => {
        const cell = { request: (path: string) => fetchHttp(apache.url(path)) };
        const bare = await environFor(cell, "/app-tcp?x=1");
        expect([bare.SCRIPT_NAME, bare.PATH_INFO, bare.QUERY_STRING]).toEqual([
          "/app-tcp",
          "/",
          "x=1",
        ]);
        const slash = await environFor(cell, "/app-tcp/");
        expect([slash.SCRIPT_NAME, slash.PATH_INFO]).toEqual(["/app-tcp/", "/"]);
        // Not proxied: Apache's own answer (this test's document root is denied).
        expect((await fetchHttp(apache.url("/app-tcple/env"))).status).toBe(403);
      });
    });

    describe("recorded: what mod_proxy_uwsgi sends", () => {
      const cell = { request: (path: string) => fetchHttp(apache.url(path)) };

      it("the example: SCRIPT_NAME the prefix, PATH_INFO the decoded rest", async () => {
        expect(paths(await environFor(cell, "/app-tcp" + MATRIX_GET))).toEqual({
          SCRIPT_NAME: "/app-tcp",
          PATH_INFO: MATRIX_PATH_INFO,
          REQUEST_URI: "/app-tcp" + MATRIX_GET,
        });
      });

      it("ProxyPass outside <Location>: the same split, but no Authorization (no CGIPassAuth)", async () => {
        const environ = await environFor(cell, "/short" + MATRIX_GET, {
          Authorization: "Bearer x",
        });
        expect(paths(environ)).toEqual({
          SCRIPT_NAME: "/short",
          PATH_INFO: MATRIX_PATH_INFO,
          REQUEST_URI: "/short" + MATRIX_GET,
        });
        expect(environ.HTTP_AUTHORIZATION).toBeUndefined();
      });

      it("a chunked upload (no Content-Length): Apache answers 411 itself and tsgi logs nothing", async () => {
        const before = tcpTsgi.proc.stderr;
        const upload = randomUpload(64 * 1024, 16 * 1024);
        const result = await fetchHttp(apache.url("/app-tcp/sha256"), {
          method: "POST",
          body: upload.body,
        });
        expect(result.status).toBe(411);
        await sleep(200);
        expect(tcpTsgi.proc.stderr.slice(before.length)).toBe("");
      });

      it("a response streams through: the first Server-Sent Event arrives before the stream ends", async () => {
        await expectFirstEventEarly(apache.url("/app-tcp/sse"));
      });
    });
  },
);

// ---------------------------------------------------------------------------
// lighttpd: examples/deploy/lighttpd-scgi/tsgi-uwsgi.conf (scgi.protocol = "uwsgi")

describe.skipIf(!lighttpdBinary)(
  "lighttpd mod_scgi speaking uwsgi to tsgi on a unix socket, examples/deploy/lighttpd-scgi/tsgi-uwsgi.conf",
  () => {
    let lighttpd: Lighttpd;
    let tsgi: TsgiFcgi;

    beforeAll(async () => {
      tsgi = await startUwsgi("unix");
      const config = example("lighttpd-scgi", "tsgi-uwsgi.conf", {
        PREFIX: "/app",
        SOCKET: socketOf(tsgi),
      });
      const streaming = example("lighttpd-scgi", "tsgi-uwsgi.conf", {
        PREFIX: "/sse",
        SOCKET: socketOf(tsgi),
      })
        .replace('server.modules += ( "mod_scgi" )', "")
        .replace("# server.stream-response-body = 2", "server.stream-response-body = 2");
      lighttpd = await startLighttpd(group, lighttpdBinary!, tempDir(group, "tsgi-lighttpd-"), [
        config,
        streaming,
      ]);
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => tsgi.proc.stderr,
      }),
    );

    it("recorded: SCRIPT_NAME the prefix, PATH_INFO the decoded rest; /apple is not the application", async () => {
      const cell = { request: (path: string) => fetchHttp(lighttpd.url(path)) };
      expect(paths(await environFor(cell, "/app" + MATRIX_GET))).toEqual({
        SCRIPT_NAME: "/app",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app" + MATRIX_GET,
      });
      expect((await fetchHttp(lighttpd.url("/apple/env"))).status).toBe(404);
    });

    it("server.stream-response-body = 2: the first Server-Sent Event arrives before the stream ends", async () => {
      await expectFirstEventEarly(lighttpd.url("/sse/sse"));
    });

    it("recorded: without it (lighttpd's default) the whole response is held back", async () => {
      const result = await timedGet(lighttpd.url("/app/sse") + "?wait=1500");
      expect(result.body).toBe("data: first\n\ndata: second\n\n");
      expect(result.firstChunkMs).toBeGreaterThanOrEqual(1400);
    });
  },
);

// ---------------------------------------------------------------------------
// The whole site ("/")

describe.skipIf(!apacheBinary || !uwsgiModule)(
  'Apache mod_proxy_uwsgi for the whole site (<Location "/">, examples/deploy/apache-proxy-uwsgi/tsgi-proxy-uwsgi-tcp.conf)',
  () => {
    let apache: Apache;
    let tsgi: TsgiFcgi;

    beforeAll(async () => {
      tsgi = await startUwsgi("tcp");
      apache = await startApache(group, apacheBinary!, MODULES, {
        dir: tempDir(group, "tsgi-apache-proxy-uwsgi-"),
        mpm: "event",
        modules: ["proxy", "proxy_uwsgi"],
        config: example("apache-proxy-uwsgi", "tsgi-proxy-uwsgi-tcp.conf", {
          PREFIX: "/",
          ...hostPortOf(tsgi),
        }),
      });
    });

    it("recorded: SCRIPT_NAME empty, PATH_INFO the whole decoded path", async () => {
      const cell = { request: (path: string) => fetchHttp(apache.url(path)) };
      expect(paths(await environFor(cell, MATRIX_GET))).toEqual({
        SCRIPT_NAME: "",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: MATRIX_GET,
      });
    });

    matrixTests(() =>
      httpCell(() => apache.url(""), {
        mount: "",
        persistent: true,
        errorLog: () => tsgi.proc.stderr,
      }),
    );
  },
);

describe.skipIf(!lighttpdBinary)(
  'lighttpd mod_scgi speaking uwsgi for the whole site ("/" => … with "fix-root-scriptname")',
  () => {
    let lighttpd: Lighttpd;
    let tsgi: TsgiFcgi;

    beforeAll(async () => {
      tsgi = await startUwsgi("tcp");
      const { HOST, PORT } = hostPortOf(tsgi);
      lighttpd = await startLighttpd(group, lighttpdBinary!, tempDir(group, "tsgi-lighttpd-"), [
        `server.modules += ( "mod_scgi" )
scgi.protocol = "uwsgi"
scgi.server = ( "/" => (( "host" => "${HOST}", "port" => ${PORT}, "check-local" => "disable", "fix-root-scriptname" => "enable" )))`,
      ]);
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "",
        persistent: true,
        errorLog: () => tsgi.proc.stderr,
      }),
    );
  },
);

// ---------------------------------------------------------------------------
// The socket on fd 0, as examples/deploy/systemd gives it

describe.skipIf(!nginxBinary || !spawnFcgi)(
  "tsgi uwsgi on a socket inherited on fd 0 (no --listen, as under systemd's socket activation), behind examples/deploy/nginx-uwsgi",
  () => {
    it("serves the request matrix's GET", async () => {
      const tsgi = await startTsgiOnFd0(group, "uwsgi", spawnFcgi!, MATRIX_APP);
      const nginx = await startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-uwsgi", "tsgi-uwsgi.conf", {
          SOCKET: socketOf(tsgi),
          PREFIX: "/app",
          LISTEN: listen,
        }),
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
