// Live-process fuzz property: generated request streams, in random chunks, to a real
// `tsgi fcgi` running test/fixtures/proof/echo.js must get exactly the predicted responses.

// Meanwhile other sockets send garbage; after each batch the process must be alive
// and answer a fresh request in time. Used by test/fuzz.test.ts and bench/fuzz.js.

import { join } from "node:path";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import fc from "fast-check";
import { parseCgiResponse } from "../helpers/cgi.js";
import { REPO, sleep, type Proc, type ProcessGroup } from "../helpers/processes.js";
import { startTsgiFcgi } from "../helpers/tsgi.js";
import {
  FastCgiClient,
  type ClientRecord,
  type FastCgiAddress,
} from "../helpers/fastcgi-client.js";
import {
  KNOWN_VALUE_NAMES,
  T,
  chunk,
  chunkPlanArb,
  connectionArb,
  decodePairs,
  encodeRecords,
  expectedFor,
  garbageArb,
  roundRecords,
  type GenConnection,
  type Limits,
  type RequestShape,
} from "./generators.js";

export const ECHO_APP = join(REPO, "test", "fixtures", "proof", "echo.js");

/** Limits the echo server runs with; the generators reach past maxParamsBytes on purpose. */
export const LIVE_LIMITS = { maxParamsBytes: 100_000, maxConnections: 1024, concurrency: 1024 };

export interface LiveServer {
  address: FastCgiAddress;
  proc: Proc;
  limits: Limits & { maxConnections: number; concurrency: number };
}

export async function startEchoServer(
  group: ProcessGroup,
  listen: "unix" | "tcp" = "unix",
): Promise<LiveServer> {
  const { proc, address } = await startTsgiFcgi(group, {
    app: ECHO_APP,
    listen,
    args: [
      "--max-params-bytes",
      String(LIVE_LIMITS.maxParamsBytes),
      "--max-connections",
      String(LIVE_LIMITS.maxConnections),
      "--concurrency",
      String(LIVE_LIMITS.concurrency),
    ],
  });
  return { proc, address, limits: LIVE_LIMITS };
}

/** Smaller than the parser's shapes: every byte here crosses a socket and a process. */
export const LIVE_SHAPE: RequestShape = {
  maxPairs: 8,
  maxName: 200,
  maxValue: 110_000,
  maxBody: 150_000,
};

/** How long a healthy connection may wait for anything before the case counts as a hang. */
export const HANG_MS = 10_000;

export interface LiveCounters {
  cases: number;
  connections: number;
  requests: number;
  garbageConnections: number;
  bytesSent: number;
}

export function newCounters(): LiveCounters {
  return { cases: 0, connections: 0, requests: 0, garbageConnections: 0, bytesSent: 0 };
}

/** Writes `bytes` cut as `plan` says, letting the event loop turn between pieces so they leave as separate writes. Stops quietly if the server closed. */
async function sendChunked(client: FastCgiClient, bytes: Buffer, plan: number[]): Promise<void> {
  let index = 0;
  for (const piece of chunk(bytes, plan, 2000)) {
    if (client.closed || client.socket.destroyed) return;
    try {
      await client.sendRaw(piece);
    } catch {
      return; // the server closed the connection (expected after a request without KEEP_CONN)
    }
    if (++index % 3 === 0) await yieldToLoop();
  }
}

function typeName(type: number): string {
  return Object.entries(T).find(([, value]) => value === type)?.[0] ?? `type ${type}`;
}

function describeRecords(records: readonly ClientRecord[]): string {
  return records.map((r) => `${typeName(r.type)}#${r.requestId}(${r.content.length})`).join(", ");
}

/**
 * Runs one generated connection and checks every response exactly. Returns
 * the number of requests checked; throws with a description on any difference.
 */
export async function runValidConnection(
  server: LiveServer,
  connection: GenConnection,
  plan: number[],
  counters: LiveCounters,
): Promise<void> {
  const client = await FastCgiClient.connect(server.address, { timeoutMs: HANG_MS });
  try {
    for (const [roundIndex, round] of connection.rounds.entries()) {
      const from = client.records.length;
      const bytes = encodeRecords(roundRecords(round));
      counters.bytesSent += bytes.length;
      await sendChunked(client, bytes, plan);
      const where = `round ${roundIndex + 1}/${connection.rounds.length}`;

      for (const request of round.requests) {
        const expected = expectedFor(request, server.limits);
        let result;
        try {
          result = await client.response(request.id, { from, timeoutMs: HANG_MS });
        } catch (error) {
          throw new Error(
            `${where}, request ${request.id} (role ${request.role}): ${(error as Error).message}`,
            { cause: error },
          );
        }
        const records = result.records;
        const endIndex = records.findIndex((r) => r.type === T.END_REQUEST);
        const shape = describeRecords(records);
        if (expected.kind === "unknown-role") {
          if (records.length !== 1 || result.endRequest.protocolStatus !== 3)
            throw new Error(
              `${where}, request ${request.id}: expected only END_REQUEST(UNKNOWN_ROLE), got ${shape} ${JSON.stringify(result.endRequest)}`,
            );
          counters.requests++;
          continue;
        }
        // STDOUT pieces, the empty STDOUT, END_REQUEST(REQUEST_COMPLETE): nothing else, nothing after.
        const ok =
          endIndex === records.length - 1 &&
          endIndex >= 2 &&
          records
            .slice(0, endIndex - 1)
            .every((r) => r.type === T.STDOUT && r.content.length > 0) &&
          records[endIndex - 1].type === T.STDOUT &&
          records[endIndex - 1].content.length === 0;
        if (!ok) throw new Error(`${where}, request ${request.id}: records out of shape: ${shape}`);
        if (result.endRequest.appStatus !== 0 || result.endRequest.protocolStatus !== 0)
          throw new Error(
            `${where}, request ${request.id}: END_REQUEST ${JSON.stringify(result.endRequest)}`,
          );
        const response = parseCgiResponse(result.stdout);
        if (expected.kind === "too-large") {
          if (!response.status.startsWith("431 "))
            throw new Error(
              `${where}, request ${request.id}: params over --max-params-bytes got ${response.status}`,
            );
        } else {
          if (response.status !== "200 OK")
            throw new Error(
              `${where}, request ${request.id}: status ${response.status}: ${response.body.toString("latin1").slice(0, 300)}`,
            );
          const got = JSON.stringify(JSON.parse(response.body.toString("utf8")));
          const want = JSON.stringify(expected.body);
          if (got !== want)
            throw new Error(
              `${where}, request ${request.id}: the app saw something else:\n  got  ${got.slice(0, 600)}\n  want ${want.slice(0, 600)}`,
            );
        }
        counters.requests++;
      }

      // Management records: one answer each, in order.
      if (round.management.length > 0) {
        const answers = () => client.records.slice(from).filter((r) => r.requestId === 0);
        await client.waitForRecords(() => answers().length >= round.management.length, HANG_MS);
        for (const [index, management] of round.management.entries()) {
          const answer = answers()[index];
          if (management.type === T.GET_VALUES) {
            const known: Record<string, string> = {
              FCGI_MAX_CONNS: String(server.limits.maxConnections),
              FCGI_MAX_REQS: String(server.limits.concurrency),
              FCGI_MPXS_CONNS: "1",
            };
            const want = [
              ...new Set(management.asked.filter((name) => KNOWN_VALUE_NAMES.includes(name))),
            ]
              .map((name) => [name, known[name]])
              .sort();
            const got =
              answer.type === T.GET_VALUES_RESULT
                ? decodePairs(answer.content).sort()
                : `${typeName(answer.type)}`;
            if (JSON.stringify(got) !== JSON.stringify(want))
              throw new Error(
                `${where}: GET_VALUES ${JSON.stringify(management.asked)} answered ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
              );
          } else if (answer.type !== T.UNKNOWN_TYPE || answer.content[0] !== management.type) {
            throw new Error(
              `${where}: management type ${management.type} answered ${typeName(answer.type)} ${answer.content.toString("hex")}`,
            );
          }
        }
        if (answers().length !== round.management.length)
          throw new Error(
            `${where}: ${answers().length} management answers for ${round.management.length} records`,
          );
      }
    }

    const last = connection.rounds.at(-1)!;
    if (last.requests.length === 1 && !last.requests[0].keepConn) {
      // Without FCGI_KEEP_CONN the server closes the connection after the request.
      await client.waitForClose(HANG_MS);
    } else {
      // With it, the connection must still be open and answering.
      const before = client.records.length;
      await client.sendRaw(
        encodeRecords([
          {
            type: T.GET_VALUES,
            id: 0,
            content: Buffer.from([15, 0, ...Buffer.from("FCGI_MPXS_CONNS")]),
            padding: 7,
            padByte: 0,
          },
        ]),
      );
      await client.waitForRecords((records) => records.length > before, HANG_MS);
      if (client.records[before].type !== T.GET_VALUES_RESULT)
        throw new Error(
          `a kept connection answered GET_VALUES with ${typeName(client.records[before].type)}`,
        );
    }
    checkFraming(client.rawBytes(), true);
    counters.connections++;
  } finally {
    client.destroy();
  }
}

/**
 * What the server wrote must be whole FastCGI records of the types an
 * application sends; with `complete` false (we cut the connection), the last one may be partial.
 */
function checkFraming(bytes: Buffer, complete: boolean): void {
  const allowed = new Set<number>([
    T.STDOUT,
    T.STDERR,
    T.END_REQUEST,
    T.GET_VALUES_RESULT,
    T.UNKNOWN_TYPE,
  ]);
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    if (bytes[offset] !== 1)
      throw new Error(`the server wrote version byte ${bytes[offset]} at offset ${offset}`);
    if (!allowed.has(bytes[offset + 1]))
      throw new Error(`the server wrote a record of type ${bytes[offset + 1]}`);
    offset += 8 + bytes.readUInt16BE(offset + 4) + bytes[offset + 6];
  }
  if (complete && offset !== bytes.length)
    throw new Error(`the server's output ends inside a record (${offset} of ${bytes.length})`);
}

/** Sends garbage on its own connection, lingers a moment for whatever the server does, then cuts the connection. */
export async function runGarbageConnection(
  server: LiveServer,
  bytes: Buffer,
  plan: number[],
  counters: LiveCounters,
): Promise<void> {
  const client = await FastCgiClient.connect(server.address, { timeoutMs: HANG_MS });
  try {
    counters.bytesSent += bytes.length;
    await sendChunked(client, bytes, plan);
    await Promise.race([client.waitForClose(150).catch(() => {}), sleep(150)]);
    checkFraming(client.rawBytes(), false);
    counters.garbageConnections++;
  } finally {
    client.destroy();
  }
}

/** The process is alive and answers a fresh request within `timeoutMs`. */
export async function checkHealthy(server: LiveServer, timeoutMs = 5000): Promise<void> {
  if (!server.proc.running) throw new Error(`tsgi fcgi died: ${server.proc.stderr.slice(-2000)}`);
  const started = Date.now();
  const client = await FastCgiClient.connect(server.address, { timeoutMs });
  try {
    const result = await client.request({
      params: { REQUEST_METHOD: "GET", PATH_INFO: "/health" },
      timeoutMs,
    });
    const response = parseCgiResponse(result.stdout);
    if (response.status !== "200 OK") throw new Error(`health check answered ${response.status}`);
  } finally {
    client.destroy();
  }
  const elapsed = Date.now() - started;
  if (elapsed > timeoutMs) throw new Error(`health check took ${elapsed} ms`);
}

/** Lines in the server's stderr that mean a bug rather than a peer's fault. */
export const INTERNAL_ERROR =
  /TypeError|RangeError|ReferenceError|SyntaxError|Unhandled|uncaught|FATAL|Maximum call stack|heap out of memory|error in application|error in body/;

export const liveCaseArb = fc.record({
  connections: fc.array(connectionArb(LIVE_SHAPE), { minLength: 1, maxLength: 3 }),
  garbage: fc.array(garbageArb(LIVE_SHAPE), { maxLength: 4 }),
  plans: fc.array(chunkPlanArb, { minLength: 7, maxLength: 7 }),
});

/** One case: the valid and the garbage connections at once, then the health check. */
export function liveProperty(server: LiveServer, counters: LiveCounters) {
  return fc.asyncProperty(liveCaseArb, async ({ connections, garbage, plans }) => {
    const stderrFrom = server.proc.stderr.length;
    await Promise.all([
      ...connections.map((connection, index) =>
        runValidConnection(server, connection, plans[index], counters),
      ),
      ...garbage.map((bytes, index) =>
        runGarbageConnection(server, bytes, plans[3 + index], counters),
      ),
    ]);
    await checkHealthy(server);
    const internal = server.proc.stderr
      .slice(stderrFrom)
      .split("\n")
      .filter((line) => INTERNAL_ERROR.test(line));
    if (internal.length > 0)
      throw new Error(`the server logged internal errors:\n${internal.slice(0, 5).join("\n")}`);
    counters.cases++;
  });
}
