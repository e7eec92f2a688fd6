// `tsgi scgi` behind the real front ends, configured from examples/deploy/
// (nginx-scgi, apache-proxy-scgi, lighttpd-scgi): the request matrix for each
// (unix socket and TCP, under a prefix and for the whole site), the environ
// each server sends (recorded where they differ), uploads, and Server-Sent
// Events with response buffering off. Needs `npm run build` first.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  environFor,
  example,
  expectFirstEventEarly,
  fetchHttp,
  httpCell,
  MATRIX_GET,
  MATRIX_PATH_INFO,
  matrixTests,
  timedGet,
} from "./helpers/frontends.js";
import { startNginxSite, type Nginx } from "./helpers/nginx.js";
import { startApache, type Apache } from "./helpers/apache.js";
import { startLighttpd, type Lighttpd } from "./helpers/lighttpd.js";
import { ProcessGroup, sleep, tempDir } from "./helpers/processes.js";
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

const found = findFrontEnds("scgi");
const {
  nginx: nginxBinary,
  apache: apacheBinary,
  apacheModules: MODULES,
  apacheModule: scgiModule,
  lighttpd: lighttpdBinary,
} = found;

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** `tsgi scgi` with the matrix app on a unix socket (666) or TCP. */
const startScgi = (listen: "unix" | "tcp") => startGateway(group, "scgi", listen);

/** The matrix GET's path as sent, still percent-encoded. */
const ENCODED_PATH = MATRIX_GET.split("?")[0];

// ---------------------------------------------------------------------------
// nginx: examples/deploy/nginx-scgi

describe.skipIf(!nginxBinary)("nginx scgi_pass, examples/deploy/nginx-scgi", () => {
  let unixTsgi: TsgiFcgi;
  let tcpTsgi: TsgiFcgi;
  let unixNginx: Nginx;
  let tcpNginx: Nginx;

  beforeAll(async () => {
    [unixTsgi, tcpTsgi] = await Promise.all([startScgi("unix"), startScgi("tcp")]);
    [unixNginx, tcpNginx] = await Promise.all([
      startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-scgi", "tsgi-scgi.conf", {
          SOCKET: socketOf(unixTsgi),
          PREFIX: "/app",
          LISTEN: listen,
        }),
      ),
      startNginxSite(group, nginxBinary!, (listen) =>
        example("nginx-scgi", "tsgi-scgi-tcp.conf", {
          ...hostPortOf(tcpTsgi),
          PREFIX: "",
          LISTEN: listen,
        }),
      ),
    ]);
  });

  describe("unix socket at /app (tsgi-scgi.conf)", () => {
    matrixTests(() =>
      httpCell(() => unixNginx.url(""), {
        mount: "/app",
        persistent: true,
        errorLog: () => unixTsgi.proc.stderr,
      }),
    );

    nginxPrefixTests(() => unixNginx);
  });

  describe("TCP for the whole site (tsgi-scgi-tcp.conf, empty @PREFIX@)", () => {
    matrixTests(() =>
      httpCell(() => tcpNginx.url(""), {
        mount: "",
        persistent: true,
        errorLog: () => tcpTsgi.proc.stderr,
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
        include scgi_params;
        scgi_pass unix:${socketOf(unixTsgi)};
    }
    # The example with its response buffering turned off, for streams.
${locationOf(
  example("nginx-scgi", "tsgi-scgi.conf", {
    SOCKET: socketOf(unixTsgi),
    PREFIX: "/sse",
    LISTEN: "unused",
  }),
).replace("# scgi_buffering off;", "scgi_buffering off;")}
    # What the example warns about: request buffering off.
    location = /sha256 {
        include scgi_params;
        scgi_pass unix:${socketOf(unixTsgi)};
        scgi_request_buffering off;
    }
}
`,
      );
    });

    it("stock scgi_params: no SCRIPT_NAME, no PATH_INFO; tsgi takes PATH_INFO from DOCUMENT_URI", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(nginx.url(path)) },
        "/plain" + MATRIX_GET,
      );
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "",
        PATH_INFO: "/plain" + MATRIX_PATH_INFO,
        REQUEST_URI: "/plain" + MATRIX_GET,
        DOCUMENT_URI: "/plain" + MATRIX_PATH_INFO,
      });
      // nginx puts CONTENT_LENGTH first on its own and sends SCGI=1 (from scgi_params).
      expect([environ.CONTENT_LENGTH, environ.SCGI]).toEqual(["0", "1"]);
    });

    it("the example's split: SCRIPT_NAME the prefix, PATH_INFO the decoded rest", async () => {
      const environ = await environFor(
        { request: (path) => fetchHttp(unixNginx.url(path)) },
        "/app" + MATRIX_GET,
      );
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "/app",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app" + MATRIX_GET,
        DOCUMENT_URI: "/app" + MATRIX_PATH_INFO,
      });
    });

    it("scgi_buffering off: the first Server-Sent Event arrives before the stream ends", async () => {
      const result = await expectFirstEventEarly(nginx.url("/sse/sse"));
      expect(result.headers["content-type"]).toBe("text/event-stream");
    });

    it("scgi_request_buffering off with a slow upload: nginx 1.22 sends a CONTENT_LENGTH of only what it has read so far (why the example keeps buffering on)", async () => {
      const total = 4 * 1024 * 1024;
      const upload = async function* () {
        yield Buffer.alloc(1000, 1);
        // nginx has sent the head by now, with the bytes it had.
        await sleep(300);
        for (let sent = 1000; sent < total; sent += 1024 * 1024)
          yield Buffer.alloc(Math.min(1024 * 1024, total - sent), 2);
      };
      const result = await fetchHttp(nginx.url("/sha256"), {
        method: "POST",
        body: upload,
        headers: { "Content-Length": String(total) },
      });
      // The application answers what it got: the 1000 bytes nginx had when it sent the head, as CONTENT_LENGTH.
      expect(result.status).toBe(200);
      const report = JSON.parse(result.body.toString("utf8")) as {
        length: number;
        contentLength: string;
      };
      expect(report.length).toBeLessThan(total);
      expect(report.contentLength).toBe(String(report.length));
    });
  });
});

// ---------------------------------------------------------------------------
// Apache: examples/deploy/apache-proxy-scgi

describe.skipIf(!apacheBinary || !scgiModule)(
  "Apache mpm_event + mod_proxy_scgi, examples/deploy/apache-proxy-scgi",
  () => {
    let apache: Apache;
    let unixTsgi: TsgiFcgi;
    let tcpTsgi: TsgiFcgi;

    beforeAll(async () => {
      [unixTsgi, tcpTsgi] = await Promise.all([startScgi("unix"), startScgi("tcp")]);
      const tcp = hostPortOf(tcpTsgi);
      const url = `scgi://${tcp.HOST}:${tcp.PORT}`;
      apache = await startApache(group, apacheBinary!, MODULES, {
        dir: tempDir(group, "tsgi-apache-proxy-scgi-"),
        mpm: "event",
        modules: ["proxy", "proxy_scgi", "setenvif"],
        config: [
          example("apache-proxy-scgi", "tsgi-proxy-scgi.conf", {
            PREFIX: "/app",
            SOCKET: socketOf(unixTsgi),
          }),
          example("apache-proxy-scgi", "tsgi-proxy-scgi-tcp.conf", { PREFIX: "/app-tcp", ...tcp }),
          // What the example avoids, recorded below: ProxyPass, with and without proxy-scgi-pathinfo.
          `ProxyPass "/raw/" "${url}/"`,
          `ProxyPass "/pathinfo/" "${url}/"`,
          `SetEnvIf Request_URI "^/pathinfo/" proxy-scgi-pathinfo`,
          `ProxyPass "/unmatched" "${url}/"`,
          `SetEnvIf Request_URI "^/unmatched" proxy-scgi-pathinfo`,
        ].join("\n"),
      });
    });

    apacheExampleTests(
      "scgi",
      () => ({ apache, unixTsgi, tcpTsgi }),
      {
        unix: "SetHandler proxy:unix:…|scgi://localhost/",
        tcp: "SetHandler proxy:scgi://127.0.0.1:port/",
      },
      { bare: ["/app-tcp", ""], slash: ["/app-tcp", "/"] },
    );

    describe("recorded: what mod_proxy_scgi sends", () => {
      const cell = { request: (path: string) => fetchHttp(apache.url(path)) };

      it("ProxyPass alone: the whole decoded path as SCRIPT_NAME, PATH_INFO empty", async () => {
        expect(paths(await environFor(cell, "/raw" + MATRIX_GET))).toMatchObject({
          SCRIPT_NAME: "/raw" + MATRIX_PATH_INFO,
          PATH_INFO: "",
        });
      });

      it("ProxyPass with proxy-scgi-pathinfo: right for a plain path, but a %-escape leaves PATH_INFO encoded and SCRIPT_NAME the whole path", async () => {
        const plain = await environFor(cell, "/pathinfo/env/plain");
        expect([plain.SCRIPT_NAME, plain.PATH_INFO]).toEqual(["/pathinfo", "/env/plain"]);
        const escaped = await environFor(cell, "/pathinfo" + MATRIX_GET);
        expect([escaped.SCRIPT_NAME, escaped.PATH_INFO]).toEqual([
          "/pathinfo" + MATRIX_PATH_INFO,
          ENCODED_PATH,
        ]);
      });

      it("ProxyPass slashes that do not match (/unmatched → …/): PATH_INFO begins with //", async () => {
        const environ = await environFor(cell, "/unmatched/env/plain");
        expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/unmatched", "//env/plain"]);
      });
    });
  },
);

// ---------------------------------------------------------------------------
// lighttpd: examples/deploy/lighttpd-scgi/tsgi-scgi.conf

describe.skipIf(!lighttpdBinary)(
  "lighttpd mod_scgi to tsgi on TCP, examples/deploy/lighttpd-scgi/tsgi-scgi.conf",
  () => {
    let lighttpd: Lighttpd;
    let tsgi: TsgiFcgi;

    beforeAll(async () => {
      tsgi = await startScgi("tcp");
      const config = example("lighttpd-scgi", "tsgi-scgi.conf", {
        PREFIX: "/app",
        ...hostPortOf(tsgi),
      });
      // The same with the example's streaming line turned on, at /sse.
      const streaming = example("lighttpd-scgi", "tsgi-scgi.conf", {
        PREFIX: "/sse",
        ...hostPortOf(tsgi),
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
      const environ = await environFor(cell, "/app" + MATRIX_GET);
      expect(paths(environ)).toEqual({
        SCRIPT_NAME: "/app",
        PATH_INFO: MATRIX_PATH_INFO,
        REQUEST_URI: "/app" + MATRIX_GET,
        DOCUMENT_URI: undefined,
      });
      expect(environ.SCGI).toBe("1");
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
// The whole site ("/"): what lighttpd and Apache send there

describe.skipIf(!lighttpdBinary)('lighttpd mod_scgi for the whole site ("/" => …)', () => {
  let tsgi: TsgiFcgi;

  beforeAll(async () => {
    tsgi = await startScgi("tcp");
  });

  /** lighttpd with `scgi.server = ( "/" => … )`, and `more` options for the backend. */
  async function startRoot(more: string): Promise<Lighttpd> {
    const { HOST, PORT } = hostPortOf(tsgi);
    return startLighttpd(group, lighttpdBinary!, tempDir(group, "tsgi-lighttpd-"), [
      `server.modules += ( "mod_scgi" )
scgi.server = ( "/" => (( "host" => "${HOST}", "port" => ${PORT}, "check-local" => "disable", ${more} )))`,
    ]);
  }

  describe('with "fix-root-scriptname" => "enable"', () => {
    let lighttpd: Lighttpd;
    beforeAll(async () => {
      lighttpd = await startRoot('"fix-root-scriptname" => "enable"');
    });

    matrixTests(() =>
      httpCell(() => lighttpd.url(""), {
        mount: "",
        persistent: true,
        errorLog: () => tsgi.proc.stderr,
      }),
    );
  });

  it('recorded: without "fix-root-scriptname", SCRIPT_NAME is the first path segment', async () => {
    const lighttpd = await startRoot("");
    const environ = await environFor(
      { request: (path) => fetchHttp(lighttpd.url(path)) },
      MATRIX_GET,
    );
    expect(paths(environ)).toEqual({
      SCRIPT_NAME: "/env",
      PATH_INFO: MATRIX_PATH_INFO.slice("/env".length),
      REQUEST_URI: MATRIX_GET,
      DOCUMENT_URI: undefined,
    });
  });
});

describe.skipIf(!apacheBinary || !scgiModule)(
  "recorded: Apache mod_proxy_scgi for the whole site",
  () => {
    it('ProxyPass "/" with proxy-scgi-pathinfo: right for a plain path, the whole path as SCRIPT_NAME and PATH_INFO still encoded for a %-escape', async () => {
      const tsgi = await startScgi("tcp");
      const { HOST, PORT } = hostPortOf(tsgi);
      const apache = await startApache(group, apacheBinary!, MODULES, {
        dir: tempDir(group, "tsgi-apache-proxy-scgi-"),
        mpm: "event",
        modules: ["proxy", "proxy_scgi", "setenvif"],
        config: [
          `ProxyPass "/" "scgi://${HOST}:${PORT}/"`,
          `SetEnvIf Request_URI "^/" proxy-scgi-pathinfo`,
        ].join("\n"),
      });
      const cell = { request: (path: string) => fetchHttp(apache.url(path)) };
      expect(paths(await environFor(cell, "/env/plain"))).toEqual({
        SCRIPT_NAME: "",
        PATH_INFO: "/env/plain",
        REQUEST_URI: "/env/plain",
        DOCUMENT_URI: undefined,
      });
      expect(paths(await environFor(cell, MATRIX_GET))).toEqual({
        SCRIPT_NAME: MATRIX_PATH_INFO,
        PATH_INFO: ENCODED_PATH,
        REQUEST_URI: MATRIX_GET,
        DOCUMENT_URI: undefined,
      });
    });
  },
);

// ---------------------------------------------------------------------------
// The socket on fd 0 (examples/deploy/systemd), and tsgi not running

fd0Tests(group, "scgi", found);
notRunningTests(group, "scgi", found);
