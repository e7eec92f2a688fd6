// `tsgi uwsgi` behind the real front ends, configured from examples/deploy/
// (nginx-uwsgi, apache-proxy-uwsgi, lighttpd-scgi/tsgi-uwsgi.conf): the request
// matrix for each (unix socket and TCP, under a prefix and for the whole site,
// mounted by a split or by modifier1 30), the environ each server sends
// (recorded where they differ), a 100 MiB upload streamed through nginx with
// uwsgi_request_buffering off, and Server-Sent Events with response buffering
// off. Needs `npm run build` first.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  environFor,
  example,
  expectFirstEventEarly,
  fetchHttp,
  type HttpOptions,
  httpCell,
  MATRIX_GET,
  MATRIX_PATH_INFO,
  matrixTests,
  peakRssKb,
  randomUpload,
  timedGet,
} from "./helpers/frontends.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { startLighttpd, type Lighttpd } from "./helpers/lighttpd.js";
import { ProcessGroup, tempDir } from "./helpers/processes.js";
import { type TsgiFcgi } from "./helpers/tsgi.js";
import {
  apacheExampleTests,
  fd0Tests,
  findFrontEnds,
  hostPortOf,
  locationOf,
  nginxPrefixTests,
  notRunningTests,
  paths,
  socketOf,
  startGateway,
} from "./helpers/stream-frontends.js";

const found = findFrontEnds("uwsgi");
const {
  nginx: nginxBinary,
  apache: apacheBinary,
  apacheModules: MODULES,
  apacheModule: uwsgiModule,
  lighttpd: lighttpdBinary,
} = found;

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** `tsgi uwsgi` with the matrix app on a unix socket (666) or TCP. */
const startUwsgi = (listen: "unix" | "tcp") => startGateway(group, "uwsgi", listen);

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

    nginxPrefixTests(() => splitNginx);
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
        ].join("\n"),
      });
    });

    // mod_proxy_uwsgi sends PATH_INFO "/" for the prefix itself, and "/app-tcp/" as SCRIPT_NAME for the prefix and a slash.
    apacheExampleTests(
      "uwsgi",
      () => ({ apache, unixTsgi, tcpTsgi }),
      { unix: "ProxyPass unix:…|uwsgi://localhost/", tcp: "ProxyPass uwsgi://127.0.0.1:port/" },
      { bare: ["/app-tcp", "/"], slash: ["/app-tcp/", "/"] },
    );
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
  'Apache mod_proxy_uwsgi for the whole site (examples/deploy/apache-proxy-uwsgi/tsgi-proxy-uwsgi-tcp.conf, @PREFIX@ "/")',
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
      const cell = {
        request: (path: string, options?: HttpOptions) => fetchHttp(apache.url(path), options),
      };
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
// The socket on fd 0 (examples/deploy/systemd), and tsgi not running

fd0Tests(group, "uwsgi", found);
notRunningTests(group, "uwsgi", found);
