// The full `tsgi` command line (commander). `tsgi cgi` normally skips this
// file: bin/tsgi.js sends it straight to the fast path in cli/cgi.ts.

import { Command } from "commander";
import { readFileSync } from "node:fs";

function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command("tsgi")
    .description("TypeScript Server Gateway Interface: run a TSGI application under CGI or FastCGI")
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError();

  program
    .command("cgi")
    .description("serve one CGI request (environ from the environment, body on stdin, response on stdout)")
    .argument("<module>", "application module: path/to/app.js (default export or `application`) or path/to/app.js:name")
    .action(async (module: string) => {
      const { main } = await import("./cgi.js");
      await main([module]);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
