// `tsgi build <module> --out <file>`: the command around build/bundle.ts.

import { BuildError, buildCgiBundle } from "../build/bundle.js";

export async function runBuildCommand(module: string, out: string): Promise<void> {
  try {
    const warnings = await buildCgiBundle(module, out);
    for (const warning of warnings) process.stderr.write(`tsgi: warning: ${warning}\n`);
    process.stderr.write(
      `tsgi: built ${out}: a CGI wrapper runs it with \`node ${out}\`, no node_modules needed\n`,
    );
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    process.stderr.write(`tsgi: build of ${module} failed:\n${error.message}\n`);
    process.exitCode = 1;
  }
}
