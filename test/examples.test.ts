// Exercises everything under examples/: hello.js and echo.js through `tsgi cgi`,
// and the Apache recipes in examples/deploy/apache-cgi under a real Apache httpd
// (mod_cgi with the prefork MPM, mod_cgid with the event MPM), filled in and
// started from a temporary directory.

import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApache, type Apache } from "./helpers/apache.js";
import { findBinary } from "./helpers/available.js";
import { sha256 } from "./helpers/bytes.js";
import { runCgi } from "./helpers/cgi.js";
import { BROKEN_APP, example, waitForLog, writeFile } from "./helpers/frontends.js";
import { ProcessGroup, REPO, TSGI_BIN, tempDir } from "./helpers/processes.js";

const EXAMPLES = join(REPO, "examples");
const APACHE_RECIPES = join(EXAMPLES, "deploy", "apache-cgi");

/** Parses echo.js output (`KEY=value` lines) into a map. */
function parseEcho(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) entries.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return entries;
}

describe("examples/hello.js", () => {
  it("answers Hello, world! under tsgi cgi", async () => {
    const result = await runCgi({ module: join(EXAMPLES, "hello.js") });
    expect(result.stdout.toString("latin1")).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, world!\n",
    );
    expect(result.code).toBe(0);
  });
});

describe("examples/echo.js", () => {
  it("lists the string environ keys sorted, and the body's length and SHA-256", async () => {
    const body = randomBytes(100_000);
    const result = await runCgi({
      module: join(EXAMPLES, "echo.js"),
      vars: {
        REQUEST_METHOD: "POST",
        CONTENT_LENGTH: String(body.length),
        PATH_INFO: "/p",
        QUERY_STRING: "q=1",
      },
      stdin: body,
    });
    expect(result.code).toBe(0);
    expect(result.header("Content-Type")).toBe("text/plain; charset=utf-8");
    const lines = result.response!.body.toString("utf8").trimEnd().split("\n");
    const keyLines = lines.slice(0, -2);
    expect(keyLines.map((line) => line.slice(0, line.indexOf("=")))).toEqual(
      keyLines.map((line) => line.slice(0, line.indexOf("="))).sort(),
    );
    expect(keyLines).toContain("REQUEST_METHOD=POST");
    expect(keyLines).toContain("PATH_INFO=/p");
    expect(keyLines).toContain("QUERY_STRING=q=1");
    expect(keyLines).toContain("tsgi.url_scheme=http");
    expect(lines.slice(-2)).toEqual([`body.length=${body.length}`, `body.sha256=${sha256(body)}`]);
  });

  it("writes environ values back as the bytes the server sent", async () => {
    const result = await runCgi({
      module: join(EXAMPLES, "echo.js"),
      rawVars: { PATH_INFO: Buffer.from([0x2f, 0xe9, 0x2f, 0xc3, 0xa9]) },
    });
    expect(
      result.response!.body.includes(
        Buffer.from([
          0x50, 0x41, 0x54, 0x48, 0x5f, 0x49, 0x4e, 0x46, 0x4f, 0x3d, 0x2f, 0xe9, 0x2f, 0xc3, 0xa9,
          0x0a,
        ]),
      ),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// The Apache recipes under a real Apache httpd.

const apacheBinary = findBinary("apache2", "apache2");
const APACHE_MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/**
 * Apache with the ScriptAlias recipe for echo.js, an .htaccess site with
 * echo.js and hello.js, and two broken wrappers for the failure messages the
 * README promises.
 */
async function startRecipes(mpm: "prefork" | "event", cgiModule: "cgi" | "cgid"): Promise<Apache> {
  const dir = tempDir(group, `tsgi-apache-${cgiModule}-`);
  const cgiDir = join(dir, "cgi-bin");
  const docRoot = join(dir, "htdocs");
  const site = join(docRoot, "site");
  for (const each of [cgiDir, site]) mkdirSync(each, { recursive: true, mode: 0o755 });
  const writeWrapper = (path: string, values: Record<string, string>) =>
    writeFile(
      path,
      example("apache-cgi", "app.cgi", { NODE: process.execPath, TSGI: TSGI_BIN, ...values }),
      0o755,
    );
  writeWrapper(join(cgiDir, "app.cgi"), { APP: join(EXAMPLES, "echo.js") });
  writeWrapper(join(cgiDir, "no-node.cgi"), {
    APP: join(EXAMPLES, "echo.js"),
    NODE: "/nonexistent/bin/node",
  });
  writeWrapper(join(cgiDir, "bad-app.cgi"), { APP: BROKEN_APP });
  writeWrapper(join(site, "app.cgi"), { APP: join(EXAMPLES, "echo.js") });
  writeWrapper(join(site, "hello.cgi"), { APP: join(EXAMPLES, "hello.js") });
  copyFileSync(join(APACHE_RECIPES, ".htaccess"), join(site, ".htaccess"));
  const recipe = writeFile(
    join(dir, "tsgi-cgi.conf"),
    example("apache-cgi", "tsgi-cgi.conf", { CGI_DIR: cgiDir }),
  );
  const config = [
    `<Directory "${docRoot}">`,
    // Exactly what the README says the .htaccess needs.
    "    AllowOverride Options FileInfo Indexes",
    "    Require all granted",
    "</Directory>",
    `Include "${recipe}"`,
    // The broken wrappers, next to the recipe's app.cgi.
    `ScriptAlias /no-node "${join(cgiDir, "no-node.cgi")}"`,
    `ScriptAlias /bad-app "${join(cgiDir, "bad-app.cgi")}"`,
  ].join("\n");
  return startApache(group, apacheBinary!, APACHE_MODULES, {
    dir,
    mpm,
    modules: ["alias", "dir", cgiModule],
    config,
  });
}

const apacheSetups = [
  { mpm: "prefork", cgiModule: "cgi" },
  { mpm: "event", cgiModule: "cgid" },
] as const;

describe.skipIf(!apacheBinary)(
  "examples/deploy/apache-cgi under a real Apache httpd (needs the Debian package apache2)",
  () => {
    describe.each(apacheSetups)("mpm_$mpm + mod_$cgiModule", ({ mpm, cgiModule }) => {
      let server: Apache;

      beforeAll(async () => {
        server = await startRecipes(mpm, cgiModule);
      });

      function url(path: string): string {
        return server.url(path);
      }

      it("runs echo.js through ScriptAlias with PATH_INFO and the query string", async () => {
        const response = await fetch(url("/app/users/caf%C3%A9?x=1&name=caf%C3%A9"));
        const text = await response.text();
        expect(response.status, text).toBe(200);
        expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
        const echoed = parseEcho(text);
        expect(echoed.get("REQUEST_METHOD")).toBe("GET");
        expect(echoed.get("SCRIPT_NAME")).toBe("/app");
        // Apache decodes PATH_INFO; the UTF-8 bytes come back unchanged.
        expect(echoed.get("PATH_INFO")).toBe("/users/café");
        expect(echoed.get("QUERY_STRING")).toBe("x=1&name=caf%C3%A9");
        expect(echoed.get("GATEWAY_INTERFACE")).toBe("CGI/1.1");
        expect(echoed.get("SERVER_PORT")).toBe(String(server.port));
        expect(echoed.get("tsgi.url_scheme")).toBe("http");
        expect(echoed.get("body.length")).toBe("0");
      });

      it("runs echo.js for the bare ScriptAlias URL with an empty PATH_INFO", async () => {
        const response = await fetch(url("/app"));
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("SCRIPT_NAME")).toBe("/app");
        expect(echoed.get("PATH_INFO") ?? "").toBe("");
      });

      it("hands a 1 MiB POST body to the application intact", async () => {
        const body = randomBytes(1024 * 1024);
        const response = await fetch(url("/app/upload"), {
          method: "POST",
          body,
          headers: { "Content-Type": "application/octet-stream" },
        });
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("REQUEST_METHOD")).toBe("POST");
        expect(echoed.get("CONTENT_LENGTH")).toBe(String(body.length));
        expect(echoed.get("CONTENT_TYPE")).toBe("application/octet-stream");
        expect(echoed.get("body.length")).toBe(String(body.length));
        expect(echoed.get("body.sha256")).toBe(sha256(body));
      });

      it("runs app.cgi through the .htaccess recipe (AddHandler cgi-script)", async () => {
        const response = await fetch(url("/site/app.cgi/from/htaccess?via=addhandler"));
        const text = await response.text();
        expect(response.status, text).toBe(200);
        const echoed = parseEcho(text);
        expect(echoed.get("SCRIPT_NAME")).toBe("/site/app.cgi");
        expect(echoed.get("PATH_INFO")).toBe("/from/htaccess");
        expect(echoed.get("QUERY_STRING")).toBe("via=addhandler");
      });

      it("runs app.cgi for the directory URL through the recipe's DirectoryIndex", async () => {
        const response = await fetch(url("/site/"));
        const echoed = parseEcho(await response.text());
        expect(response.status).toBe(200);
        expect(echoed.get("SCRIPT_NAME")).toBe("/site/app.cgi");
      });

      it("runs hello.js through the same wrapper in the .htaccess directory", async () => {
        const response = await fetch(url("/site/hello.cgi"));
        expect(response.status).toBe(200);
        expect(await response.text()).toBe("Hello, world!\n");
      });

      it("answers 500 and logs `tsgi: node not found at …` when the wrapper's node path is wrong", async () => {
        const response = await fetch(url("/no-node"));
        expect(response.status).toBe(500);
        await response.arrayBuffer();
        expect(
          await waitForLog(
            () => server.errorLog(),
            "tsgi: node not found at /nonexistent/bin/node",
          ),
        ).toContain("tsgi: node not found at /nonexistent/bin/node");
      });

      it("answers 500 and logs why when the application module fails to load", async () => {
        const response = await fetch(url("/bad-app"));
        expect(response.status).toBe(500);
        expect(await response.text()).toContain("could not be loaded");
        expect(await waitForLog(() => server.errorLog(), "configuration file missing")).toMatch(
          /tsgi: cannot load application module .*throws-at-import\.js: configuration file missing/,
        );
      });
    });
  },
);
