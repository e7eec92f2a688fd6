// The framework examples (examples/<framework>/app.ts, and the older
// examples/express-app.js and hono-app.js) under `tsgi cgi`, at the root of
// the site and under a script path: what their comments promise. Needs
// `npm run build` first.

import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCgi, type CgiResult } from "./helpers/cgi.js";
import { ProcessGroup, REPO, tempDir } from "./helpers/processes.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());
const cacheDir = join(tempDir(group, "tsgi-examples-"), "cache");

const EXAMPLES = [
  { name: "Express", module: "examples/express/app.ts" },
  { name: "Koa", module: "examples/koa/app.ts" },
  { name: "Fastify", module: "examples/fastify/app.ts" },
  { name: "Hono", module: "examples/hono/app.ts" },
];

/** One CGI request to `module` mounted at `mount`, for `path` (PATH_INFO and query). */
function request(
  module: string,
  mount: string,
  path: string,
  options: { method?: string; json?: unknown } = {},
): Promise<CgiResult> {
  const [pathInfo, query = ""] = path.split("?", 2) as [string, string?];
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  return runCgi({
    module: join(REPO, module),
    vars: {
      SCRIPT_NAME: mount,
      PATH_INFO: pathInfo,
      QUERY_STRING: query,
      REQUEST_URI: mount + path,
      REQUEST_METHOD: options.method ?? "GET",
      ...(body === undefined
        ? {}
        : { CONTENT_TYPE: "application/json", CONTENT_LENGTH: String(Buffer.byteLength(body)) }),
      TSGI_CACHE_DIR: cacheDir,
    },
    ...(body === undefined ? {} : { stdin: body }),
    timeoutMs: 15_000,
  });
}

function status(result: CgiResult): number {
  if (!result.response) throw new Error(`no CGI response; stderr:\n${result.stderr}`);
  return Number(result.response.status.slice(0, 3));
}

function bodyText(result: CgiResult): string {
  return result.response?.body.toString("utf8") ?? "";
}

for (const example of EXAMPLES) {
  describe(`${example.module} under tsgi cgi`, { timeout: 20_000 }, () => {
    for (const mount of ["", "/app.cgi"]) {
      const where = mount === "" ? "at the site's root" : `at ${mount}`;

      it(`${where}: GET / and /users/7 route below the mount point`, async () => {
        const home = await request(example.module, mount, "/");
        expect(status(home), bodyText(home) + home.stderr).toBe(200);
        expect(bodyText(home)).toBe(`Hello from ${example.name}, mounted at "${mount}"!\n`);
        const user = await request(example.module, mount, "/users/7?x=1");
        expect(status(user), bodyText(user)).toBe(200);
        const report = JSON.parse(bodyText(user)) as { id: string; query: unknown; url: string };
        expect(report).toMatchObject({ id: "7", query: { x: "1" } });
        expect(report.url.startsWith(`${mount}/users/7`)).toBe(true);
      });

      it(`${where}: POST /echo, and /login sets two cookies and redirects under the mount point`, async () => {
        const echo = await request(example.module, mount, "/echo", {
          method: "POST",
          json: { hello: "tsgi" },
        });
        expect(status(echo), bodyText(echo)).toBe(200);
        expect(JSON.parse(bodyText(echo))).toEqual({ youSent: { hello: "tsgi" } });
        const login = await request(example.module, mount, "/login");
        expect(status(login), bodyText(login)).toBe(302);
        expect(login.header("Location")).toBe(`${mount}/users/me`);
        const cookies = login.response!.headers.filter(([name]) => /^set-cookie$/i.test(name));
        expect(cookies.map(([, value]) => value.split("=")[0])).toEqual(["session", "theme"]);
      });
    }

    it("GET /countdown streams the countdown", async () => {
      const result = await request(example.module, "", "/countdown");
      expect(status(result)).toBe(200);
      expect(bodyText(result)).toBe("3…\n2…\n1…\nliftoff\n");
    });
  });
}

describe("examples/express-app.js and examples/hono-app.js under tsgi cgi", () => {
  for (const [module, greeting] of [
    ["examples/express-app.js", /^Hello from Express, 127\.0\.0\.1!\n$/],
    ["examples/hono-app.js", /^Hello from Hono!\n$/],
  ] as const) {
    it(`${module}: GET / greets, POST /echo answers the JSON`, async () => {
      const home = await request(module, "", "/");
      expect(status(home), home.stderr).toBe(200);
      expect(bodyText(home)).toMatch(greeting);
      const echo = await request(module, "", "/echo", { method: "POST", json: [1, "two"] });
      expect(JSON.parse(bodyText(echo))).toEqual({ youSent: [1, "two"] });
    });
  }
});
