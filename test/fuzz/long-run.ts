// The long fuzz run behind `npm run fuzz` (bench/fuzz.js bundles and calls this):
// the properties of test/fuzz.test.ts with fresh seeds until the time is up.

// Against one `tsgi fcgi` on a unix socket and one on TCP, which must both survive
// the whole run. Prints the count of cases; reports false on a failure.

import { ProcessGroup } from "../helpers/processes.js";
import {
  checkHealthy,
  liveProperty,
  newCounters,
  startEchoServer,
  type LiveServer,
} from "./live.js";
import { chunkingProperty, garbageProperty, paramsDecoderProperty } from "./parser.js";
import { runAsyncProperty, runProperty, type Outcome } from "./run.js";

export interface LongRunOptions {
  minutes: number;
  log: (line: string) => void;
}

interface Tally {
  name: string;
  cases: number;
  seconds: number;
}

export async function longRun(options: LongRunOptions): Promise<boolean> {
  const { log } = options;
  const group = new ProcessGroup();
  const deadline = Date.now() + options.minutes * 60_000;
  const tallies = new Map<string, Tally>();
  const live = newCounters();
  let failure: string | undefined;

  const record = (name: string, outcome: Outcome, started: number) => {
    const tally = tallies.get(name) ?? { name, cases: 0, seconds: 0 };
    tally.cases += outcome.numRuns;
    tally.seconds += (Date.now() - started) / 1000;
    tallies.set(name, tally);
    if (outcome.failure) failure = `${name}: ${outcome.failure}`;
  };

  const servers: [string, LiveServer][] = [];
  try {
    servers.push(["live (unix socket)", await startEchoServer(group, "unix")]);
    servers.push(["live (TCP)", await startEchoServer(group, "tcp")]);
    const rssAtStart = servers.map(([, server]) => server.proc.rssKb() ?? 0);
    // Slices: short enough for regular progress lines, long enough to keep the overhead small.
    const slice = Math.min(30_000, Math.max(2000, (deadline - Date.now()) / 8));
    let round = 0;
    while (Date.now() < deadline && failure === undefined) {
      round++;
      const parts: [string, () => Promise<Outcome> | Outcome][] = [
        [
          "parser chunking",
          () => runProperty(chunkingProperty(), { numRuns: 1e9, timeLimitMs: slice / 4 }),
        ],
        [
          "parser garbage",
          () => runProperty(garbageProperty(), { numRuns: 1e9, timeLimitMs: slice / 4 }),
        ],
        [
          "params decoder",
          () => runProperty(paramsDecoderProperty(), { numRuns: 1e9, timeLimitMs: slice / 8 }),
        ],
        ...servers.map(([name, server]): [string, () => Promise<Outcome>] => [
          name,
          () => runAsyncProperty(liveProperty(server, live), { numRuns: 1e9, timeLimitMs: slice }),
        ]),
      ];
      for (const [name, run] of parts) {
        if (Date.now() >= deadline || failure !== undefined) break;
        const started = Date.now();
        record(name, await run(), started);
      }
      for (const [name, server] of servers) {
        if (failure !== undefined) break;
        try {
          await checkHealthy(server);
        } catch (error) {
          failure = `${name}: health check: ${(error as Error).message}`;
        }
      }
      const total = [...tallies.values()].reduce((sum, tally) => sum + tally.cases, 0);
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      log(
        `round ${round}: ${total} cases so far (${live.requests} live requests checked, ${live.garbageConnections} garbage connections); ${left} s left`,
      );
    }

    log("");
    log("| property | cases | seconds | cases/s |");
    log("|---|---:|---:|---:|");
    let total = 0;
    for (const tally of tallies.values()) {
      total += tally.cases;
      log(
        `| ${tally.name} | ${tally.cases} | ${tally.seconds.toFixed(0)} | ${(tally.cases / Math.max(tally.seconds, 0.001)).toFixed(1)} |`,
      );
    }
    log(`| **total** | **${total}** | | |`);
    log("");
    log(
      `live: ${live.connections} valid connections, ${live.requests} requests checked exactly, ${live.garbageConnections} garbage connections, ${(live.bytesSent / 1e6).toFixed(0)} MB sent`,
    );
    for (const [index, [name, server]] of servers.entries()) {
      log(
        `${name}: pid ${server.proc.running ? server.proc.pid : "(dead)"}, RSS ${((rssAtStart[index] ?? 0) / 1024).toFixed(1)} MiB at start, ${((server.proc.rssKb() ?? 0) / 1024).toFixed(1)} MiB at the end`,
      );
    }
    if (failure !== undefined) {
      log("");
      log(`FAILED ${failure}`);
      log("(replay with FUZZ_SEED=<seed> FUZZ_PATH=<path> from the report above)");
      return false;
    }
    log(`OK: ${total} cases, no failure`);
    return true;
  } finally {
    await group.cleanUp();
  }
}
