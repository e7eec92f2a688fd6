// The JSON the inspecting fixture applications answer (test/fixtures/fcgi/app.js
// /inspect, frontends/matrix-app.js, inspect.js …), typed for the tests that
// read it. Fields a fixture leaves out are simply absent.

export interface AppReport {
  pid: number;
  environ: Record<string, string>;
  tsgi: Record<string, unknown>;
  body: string;
  [key: string]: unknown;
}

/** Parses a fixture's JSON answer. */
export function parseReport(text: string | Buffer): AppReport {
  return JSON.parse(Buffer.isBuffer(text) ? text.toString("utf8") : text) as AppReport;
}
