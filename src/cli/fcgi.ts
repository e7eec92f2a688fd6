// `tsgi fcgi <module>`: loads the application and runs the FastCGI server
// until SIGTERM or SIGINT, then shuts down gracefully.

import { AppLoadError, loadApplication } from "../load-app.js";
import { ListenError, serveFastCgi, type FastCgiOptions } from "../fastcgi/server.js";

export interface FcgiCommandOptions extends FastCgiOptions {
  /** Seconds requests in flight get to finish after SIGTERM/SIGINT. */
  grace: number;
}

export async function runFcgiCommand(spec: string, options: FcgiCommandOptions): Promise<void> {
  let app;
  try {
    app = await loadApplication(spec);
  } catch (error) {
    process.stderr.write(`tsgi: ${error instanceof AppLoadError ? error.message : String(error)}\n`);
    process.exit(1);
  }
  let running;
  try {
    running = await serveFastCgi(app, options);
  } catch (error) {
    process.stderr.write(`tsgi: ${error instanceof ListenError ? error.message : String(error)}\n`);
    process.exit(1);
  }
  process.stderr.write(`[tsgi] fastcgi: serving ${spec} on ${running.where} (pid ${process.pid})\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`[tsgi] fastcgi: ${signal} again: exiting at once\n`);
      process.exit(1);
    }
    stopping = true;
    const inFlight = running.stats().inFlight;
    process.stderr.write(`[tsgi] fastcgi: ${signal}: no new connections; ${inFlight} request(s) in flight get up to ${options.grace} s\n`);
    running.close(options.grace).then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
