// The shared-hosting recipe (examples/deploy/apache-cgi/.htaccess, with its
// optional rewrite switched on) in front of an Express app under a real Apache:
// `/site/users/7` is rewritten to `app.cgi/users/7`, and the application, which
// routes on PATH_INFO, answers its `/users/:id` route without knowing where it is.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApache, type Apache } from "./helpers/apache.js";
import { findBinary } from "./helpers/available.js";
import { DEPLOY, example, writeFile } from "./helpers/frontends.js";
import { FIXTURES, ProcessGroup, tempDir, TSGI_BIN } from "./helpers/processes.js";

const apacheBinary = findBinary("apache2", "apache2");
const MODULES = process.env.TSGI_APACHE2_MODULES ?? "/usr/lib/apache2/modules";
const APP = join(FIXTURES, "mount", "express-routes-app.js");

const group = new ProcessGroup();
afterAll(() => group.cleanUp());

/** The recipe's .htaccess with its optional rewrite lines switched on, as its comment says. */
function htaccessWithRewrite(): string {
  const recipe = readFileSync(join(DEPLOY, "apache-cgi", ".htaccess"), "utf8");
  const enabled = recipe.replace(/^# (Rewrite(?:Engine|Cond|Rule) .*)$/gm, "$1");
  expect(enabled.match(/^Rewrite/gm)).toHaveLength(3);
  return enabled;
}

describe.skipIf(!apacheBinary)("an Express app behind the .htaccess rewrite (mod_cgi)", () => {
  let apache: Apache;

  beforeAll(async () => {
    const dir = tempDir(group, "tsgi-apache-mount-");
    const site = join(dir, "htdocs", "site");
    mkdirSync(site, { recursive: true, mode: 0o755 });
    writeFile(
      join(site, "app.cgi"),
      example("apache-cgi", "app.cgi", { NODE: process.execPath, TSGI: TSGI_BIN, APP }),
      0o755,
    );
    writeFileSync(join(site, ".htaccess"), htaccessWithRewrite());
    apache = await startApache(group, apacheBinary!, MODULES, {
      dir,
      mpm: "prefork",
      modules: ["cgi", "alias", "mime", "dir", "rewrite"],
      config: [
        `<Directory "${join(dir, "htdocs")}">`,
        // What the .htaccess needs, and the symbolic-link option mod_rewrite asks for in a directory.
        "    Options FollowSymLinks",
        "    AllowOverride Options FileInfo Indexes",
        "    Require all granted",
        "</Directory>",
      ].join("\n"),
    });
  });

  it("serves the app's /users/:id route at /site/users/7", async () => {
    const response = await fetch(apache.url("/site/users/7"), {
      signal: AbortSignal.timeout(20_000),
    });
    expect(response.status, apache.errorLog()).toBe(200);
    expect(await response.json()).toEqual({
      id: "7",
      path: "/users/7",
      // The rewrite hides the script from the public URL; SCRIPT_NAME still names it.
      baseUrl: "/site/app.cgi",
      originalUrl: "/site/app.cgi/users/7",
    });
  });

  it("serves the same route at the script's own path, and the app's root at the directory", async () => {
    const direct = await fetch(apache.url("/site/app.cgi/users/8"), {
      signal: AbortSignal.timeout(20_000),
    });
    expect(await direct.json()).toMatchObject({ id: "8", baseUrl: "/site/app.cgi" });
    const home = await fetch(apache.url("/site/"), { signal: AbortSignal.timeout(20_000) });
    expect(home.status).toBe(200);
    expect(await home.text()).toMatch(/^home at \/site/);
  });

  it("sends a redirect the app builds from req.baseUrl to a URL under /site/ that serves the route", async () => {
    const response = await fetch(apache.url("/site/me"), {
      redirect: "manual",
      signal: AbortSignal.timeout(20_000),
    });
    expect(response.status, apache.errorLog()).toBe(302);
    const location = response.headers.get("location");
    expect(location).toBe("/site/app.cgi/users/9");
    const target = await fetch(apache.url(location!), { signal: AbortSignal.timeout(20_000) });
    expect(await target.json()).toMatchObject({ id: "9", path: "/users/9" });
  });
});
