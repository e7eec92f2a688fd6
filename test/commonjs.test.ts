// tsgi from CommonJS: `require("tsgi")` and `require("tsgi/cgi")` through the
// "require" condition of package.json "exports", run by Node with require(esm)
// switched off (as on Node before 20.19, where only a real CommonJS build can
// be required), and their declarations type-checked as CommonJS. What npm
// would publish is checked too. Needs `npm run build` first: both names
// resolve to dist/.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { REPO } from "./helpers/processes.js";
import { fixture, runCgi } from "./helpers/cgi.js";

const run = promisify(execFile);

describe("require() of tsgi", () => {
  it('serves a CGI request with require("tsgi/cgi") and runs testClient from require("tsgi")', async () => {
    // Node 20.19 and later would load the ES build with require(); this flag puts them back to before.
    const noRequireEsm = process.features.require_module
      ? ["--no-experimental-require-module"]
      : [];
    const result = await runCgi({
      command: [process.execPath, ...noRequireEsm, fixture("commonjs-consumer.cjs")],
      vars: { REQUEST_METHOD: "POST", CONTENT_LENGTH: "8", PATH_INFO: "/outer" },
      stdin: "cgi body",
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.response?.status).toBe("200 OK");
    expect(JSON.parse(result.response!.body.toString("utf8"))).toEqual({
      resolved: [join(REPO, "dist", "index.cjs"), join(REPO, "dist", "cgi", "gateway.cjs")],
      body: "cgi body",
      inner: { status: 200, text: "POST /inner from testClient", errors: "" },
    });
  });

  it("type-checks CommonJS TypeScript using tsgi by name under module node16, declarations included", async () => {
    // node16 is the setting under which TypeScript refuses require() of an ES module
    // (nodenext in TypeScript 5.8+ allows it); skipLibCheck off checks every .d.cts it reaches.
    const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
    const options = [
      "--noEmit",
      "--strict",
      "--target",
      "es2022",
      "--types",
      "node",
      "--skipLibCheck",
      "false",
    ];
    const result = await run(
      process.execPath,
      [
        tsc,
        ...options,
        "--module",
        "node16",
        "--moduleResolution",
        "node16",
        fixture("commonjs-types.cts"),
      ],
      { cwd: REPO },
    ).catch((error: { stdout: string; code: number }) => error);
    expect(result.stdout).toBe("");
  }, 60_000);

  it("publishes the CommonJS bundles and declarations, LICENSE and examples", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: REPO,
    });
    const files = (JSON.parse(stdout) as [{ files: { path: string }[] }])[0].files.map(
      (file) => file.path,
    );
    expect(files).toEqual(
      expect.arrayContaining([
        "dist/index.cjs",
        "dist/index.d.cts",
        "dist/types.d.cts",
        "dist/cgi/gateway.cjs",
        "dist/cgi/gateway.d.cts",
        "LICENSE",
        "examples/hello.js",
        "examples/deploy/apache-cgi/.htaccess",
        "examples/deploy/apache-cgi/README.md",
      ]),
    );
  });
});
