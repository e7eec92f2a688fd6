// Property-based fuzzing of the FastCGI record layer (fast-check, short budget): the
// parser against an independent oracle, and a live `tsgi fcgi` (from dist/: build first).

// The long run is `npm run fuzz` (bench/fuzz.js). A failure prints fast-check's
// seed and path: FUZZ_SEED=… FUZZ_PATH=… replays it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessGroup } from "./helpers/processes.js";
import {
  checkHealthy,
  liveProperty,
  newCounters,
  startEchoServer,
  type LiveServer,
} from "./fuzz/live.js";
import { chunkingProperty, garbageProperty, paramsDecoderProperty } from "./fuzz/parser.js";
import { runAsyncProperty, runProperty, type Outcome } from "./fuzz/run.js";

function report(name: string, outcome: Outcome, started: number, extra = ""): void {
  console.log(
    `fuzz ${name}: ${outcome.numRuns} cases in ${((Date.now() - started) / 1000).toFixed(1)} s${extra}`,
  );
}

describe("record parser (in process)", () => {
  it("a valid stream (any ids, roles, KEEP_CONN, params of 0/127/128/long lengths in 1- or 4-byte form, Latin-1 bytes, bodies in records, padding 0-255) cut at arbitrary points yields exactly the oracle's records, params and stdin, as the unchunked stream does", () => {
    const started = Date.now();
    const outcome = runProperty(chunkingProperty(), { numRuns: 400, timeLimitMs: 3000 });
    report("chunking", outcome, started);
    expect(outcome.failure).toBeUndefined();
    expect(outcome.numRuns).toBeGreaterThanOrEqual(50);
  });

  it("random bytes, mutated valid streams and well-framed nonsense never throw from push(), report at most one FastCgiProtocolError and stop, and finish under a watchdog", () => {
    const started = Date.now();
    const outcome = runProperty(garbageProperty(), { numRuns: 1500, timeLimitMs: 2500 });
    report("garbage", outcome, started);
    expect(outcome.failure).toBeUndefined();
    expect(outcome.numRuns).toBeGreaterThanOrEqual(200);
  });

  it("the params decoder gives the same pairs (or the same refusal) wherever its input is cut, and never decodes more than --max-params-bytes", () => {
    const started = Date.now();
    const outcome = runProperty(paramsDecoderProperty(), { numRuns: 1500, timeLimitMs: 1500 });
    report("params decoder", outcome, started);
    expect(outcome.failure).toBeUndefined();
    expect(outcome.numRuns).toBeGreaterThanOrEqual(200);
  });
});

describe("a live tsgi fcgi", () => {
  const group = new ProcessGroup();
  let server: LiveServer;
  beforeAll(async () => {
    server = await startEchoServer(group);
  });
  afterAll(() => group.cleanUp());

  it("answers generated request streams sent in random chunks exactly as predicted while other sockets send garbage; after every batch it is alive and answers a fresh request within 5 s", async () => {
    const started = Date.now();
    const counters = newCounters();
    const outcome = await runAsyncProperty(liveProperty(server, counters), {
      numRuns: 150,
      timeLimitMs: 10_000,
    });
    report(
      "live",
      outcome,
      started,
      `: ${counters.connections} valid connections, ${counters.requests} requests checked, ${counters.garbageConnections} garbage connections, ${(counters.bytesSent / 1e6).toFixed(1)} MB sent`,
    );
    expect(outcome.failure).toBeUndefined();
    expect(outcome.numRuns).toBeGreaterThanOrEqual(10);
    expect(counters.requests).toBeGreaterThanOrEqual(50);
    expect(server.proc.running).toBe(true);
    await checkHealthy(server);
  }, 60_000);
});
