// Parser-level fuzz properties for src/fastcgi/records.ts (RecordParser) and the params
// decoder: valid streams cut anywhere parse as the oracle says; garbage never throws.

// Used by test/fuzz.test.ts (short budget) and bench/fuzz.js (long run).

import { createHash } from "node:crypto";
import vm from "node:vm";
import fc from "fast-check";
import { FastCgiProtocolError, ParamsDecoder } from "../../src/fastcgi/protocol.js";
import { RecordParser, parseBeginRequest } from "../../src/fastcgi/records.js";
import {
  T,
  anyRecordArb,
  chunk,
  chunkPlanArb,
  connectionArb,
  encodeRecords,
  garbageArb,
  encodePairs,
  isStreamType,
  mutate,
  mutationsArb,
  pairArb,
  paramsOf,
  roundRecords,
  type GenRequest,
  type RequestShape,
  type WireRecord,
} from "./generators.js";

/** What a parser reports, normalised: consecutive pieces of one stream joined, an empty piece as "end". */
export interface ParseEvent {
  kind: "record" | "stream" | "end";
  type: number;
  id: number;
  length: number;
  sha256: string;
}

function event(kind: ParseEvent["kind"], type: number, id: number, bytes: Buffer): ParseEvent {
  return {
    kind,
    type,
    id,
    length: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex").slice(0, 16),
  };
}

/** The events the oracle expects for a list of records. */
export function expectedEvents(records: readonly WireRecord[]): ParseEvent[] {
  const raw: { kind: ParseEvent["kind"]; type: number; id: number; bytes: Buffer }[] = [];
  for (const record of records) {
    // Records on id 0 are management records, whole whatever their type.
    if (record.id === 0 || !isStreamType(record.type))
      raw.push({ kind: "record", type: record.type, id: record.id, bytes: record.content });
    else if (record.content.length === 0)
      raw.push({ kind: "end", type: record.type, id: record.id, bytes: record.content });
    else raw.push({ kind: "stream", type: record.type, id: record.id, bytes: record.content });
  }
  return merge(raw);
}

function merge(
  raw: { kind: ParseEvent["kind"]; type: number; id: number; bytes: Buffer }[],
): ParseEvent[] {
  const events: ParseEvent[] = [];
  for (let i = 0; i < raw.length;) {
    const first = raw[i];
    if (first.kind !== "stream") {
      events.push(event(first.kind, first.type, first.id, first.bytes));
      i++;
      continue;
    }
    const pieces: Buffer[] = [];
    while (
      i < raw.length &&
      raw[i].kind === "stream" &&
      raw[i].type === first.type &&
      raw[i].id === first.id
    )
      pieces.push(raw[i++].bytes);
    events.push(event("stream", first.type, first.id, Buffer.concat(pieces)));
  }
  return events;
}

export interface ParseResult {
  events: ParseEvent[];
  errors: Error[];
  /** Callbacks after the error was reported (must be 0). */
  callsAfterError: number;
  /** parser.isStopped at the end. */
  stopped: boolean;
  /** Params decoded per request, from the PARAMS pieces exactly as delivered. */
  params: { id: number; entries: [string, string][] | Error }[];
  /** Stream content bytes delivered in total. */
  deliveredBytes: number;
}

/**
 * Feeds chunks to a RecordParser and records what it reports. PARAMS pieces go
 * to one ParamsDecoder per request (started at its BEGIN_REQUEST), so the
 * decoder sees the same arbitrary cuts a live connection gives it.
 */
export function parseChunks(
  chunks: readonly Buffer[],
  options: { maxParamsBytes?: number } = {},
): ParseResult {
  const raw: { kind: ParseEvent["kind"]; type: number; id: number; bytes: Buffer }[] = [];
  const errors: Error[] = [];
  const decoders = new Map<number, ParamsDecoder | null>();
  const params: ParseResult["params"] = [];
  let callsAfterError = 0;
  let deliveredBytes = 0;
  const parser = new RecordParser({
    onRecord(type, id, content) {
      if (errors.length > 0) callsAfterError++;
      if (content.length > 0xffff) throw new Error(`record content of ${content.length} bytes`);
      raw.push({ kind: "record", type, id, bytes: Buffer.from(content) });
      if (type === T.BEGIN_REQUEST) {
        // Only FastCgiProtocolError may come out of it.
        try {
          parseBeginRequest(content);
        } catch (error) {
          if (!(error instanceof FastCgiProtocolError)) throw error;
        }
        decoders.set(id, new ParamsDecoder({ maxBytes: options.maxParamsBytes ?? 1 << 30 }));
      }
    },
    onStreamData(type, id, data) {
      if (errors.length > 0) callsAfterError++;
      deliveredBytes += data.length;
      raw.push({ kind: data.length === 0 ? "end" : "stream", type, id, bytes: Buffer.from(data) });
      if (type !== T.PARAMS) return;
      const decoder = decoders.get(id);
      if (!decoder) return;
      try {
        if (data.length > 0) {
          decoder.push(data);
        } else {
          params.push({
            id,
            entries: Object.entries(decoder.end()).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
          });
          decoders.set(id, null);
        }
      } catch (error) {
        if (!(error instanceof FastCgiProtocolError)) throw error;
        params.push({ id, entries: error });
        decoders.set(id, null);
      }
    },
    onError(error) {
      if (errors.length > 0) callsAfterError++;
      errors.push(error);
    },
  });
  for (const piece of chunks) parser.push(piece);
  return {
    events: merge(raw),
    errors,
    callsAfterError,
    stopped: parser.isStopped,
    params,
    deliveredBytes,
  };
}

/**
 * Runs `fn` with a watchdog: V8 terminates it after `ms`, so a parser stuck in
 * a loop fails the case (ERR_SCRIPT_EXECUTION_TIMEOUT) instead of hanging the run.
 */
export function withinMs<R>(ms: number, fn: () => R): R {
  return vm.runInNewContext("run()", { run: fn }, { timeout: ms }) as R;
}

// ---------------------------------------------------------------------------
// Property 1: a valid stream, cut anywhere, parses exactly as the oracle says.

/** Shapes kept small enough for hundreds of cases a second, with the long lengths still reachable. */
export const PARSER_SHAPE: RequestShape = {
  maxPairs: 8,
  maxName: 300,
  maxValue: 70_000,
  maxBody: 140_000,
};

export const validStreamArb = fc.oneof(
  // Requests as a web server sends them: rounds of interleaved requests with management records.
  connectionArb(PARSER_SHAPE).map((connection) => {
    const requests: GenRequest[] = [];
    const records: WireRecord[] = [];
    for (const round of connection.rounds) {
      requests.push(...round.requests);
      records.push(...roundRecords(round));
    }
    return { records, requests };
  }),
  // Any well-formed records: every type byte, id, length and padding.
  fc
    .array(anyRecordArb, { maxLength: 8 })
    .map((records) => ({ records, requests: [] as GenRequest[] })),
);

export function chunkingProperty(): fc.IPropertyWithHooks<
  [{ records: WireRecord[]; requests: GenRequest[] }, number[], boolean]
> {
  return fc.property(
    validStreamArb,
    chunkPlanArb,
    fc.boolean(),
    ({ records, requests }, plan, byteByByte) => {
      const bytes = encodeRecords(records);
      const expected = expectedEvents(records);
      const whole = withinMs(5000, () => parseChunks([bytes]));
      // Byte by byte only for smaller streams: a push per byte of 1 MB takes a while.
      const pieces = byteByByte && bytes.length <= 20_000 ? chunk(bytes, [1]) : chunk(bytes, plan);
      const cut = withinMs(5000, () => parseChunks(pieces));
      for (const result of [whole, cut]) {
        if (result.errors.length > 0)
          throw new Error(`a valid stream was reported as an error: ${result.errors[0].message}`);
        if (!equal(result.events, expected))
          throw new Error(`events differ from the oracle:\n${diff(result.events, expected)}`);
      }
      if (requests.length === 0) return true;
      // Each request's params, decoded from the pieces as cut, are exactly what was
      // encoded (as multisets: interleaving decides which request's params end first).
      const canonical = (list: { id: number; entries: unknown }[]) =>
        list.map((item) => JSON.stringify(item)).sort();
      const expectedParams = canonical(
        requests.map((request) => ({ id: request.id, entries: paramsOf(request) })),
      );
      const gotParams = canonical(
        cut.params.map((p) => ({
          id: p.id,
          entries: p.entries instanceof Error ? `error: ${p.entries.message}` : p.entries,
        })),
      );
      if (!equal(gotParams, expectedParams))
        throw new Error(`params differ:\n${diff(gotParams, expectedParams)}`);
      return true;
    },
  );
}

// ---------------------------------------------------------------------------
// Property 2: garbage never throws out of push(), errors once at most, ends.

export function garbageProperty(): fc.IPropertyWithHooks<[Buffer, number[]]> {
  return fc.property(garbageArb(PARSER_SHAPE), chunkPlanArb, (bytes, plan) => {
    // Small caps so the params limits are reached too.
    const result = withinMs(5000, () => parseChunks(chunk(bytes, plan), { maxParamsBytes: 4096 }));
    if (result.errors.length > 1) throw new Error(`onError called ${result.errors.length} times`);
    if (result.callsAfterError > 0)
      throw new Error(`${result.callsAfterError} callbacks after onError`);
    if (result.errors.length === 1 && !result.stopped)
      throw new Error("the parser reported an error but did not stop");
    if (result.errors.some((error) => !(error instanceof FastCgiProtocolError)))
      throw new Error("onError got something other than a FastCgiProtocolError");
    if (result.deliveredBytes > bytes.length)
      throw new Error(
        `delivered ${result.deliveredBytes} content bytes from ${bytes.length} input bytes`,
      );
    return true;
  });
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function diff(got: unknown[], want: unknown[]): string {
  const lines: string[] = [];
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    const g = JSON.stringify(got[i]);
    const w = JSON.stringify(want[i]);
    if (g !== w) lines.push(`  #${i}: got ${g?.slice(0, 300)}\n       want ${w?.slice(0, 300)}`);
    if (lines.length >= 5) break;
  }
  return lines.join("\n") + `\n  (${got.length} got, ${want.length} wanted)`;
}

// ---------------------------------------------------------------------------
// Property 3: the params decoder's outcome does not depend on where its input is cut.

type DecodeOutcome = { entries: [string, string][] } | { error: string };

export function decodeParams(chunks: readonly Buffer[], maxBytes: number): DecodeOutcome {
  const decoder = new ParamsDecoder({ maxBytes });
  try {
    for (const piece of chunks) decoder.push(piece);
    return {
      entries: Object.entries(decoder.end()).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    };
  } catch (error) {
    if (!(error instanceof FastCgiProtocolError)) throw error;
    // Which limit message comes first may depend on the cut; that it fails may not.
    return { error: "FastCgiProtocolError" };
  }
}

export function paramsDecoderProperty(): fc.IPropertyWithHooks<[Buffer, number[], number]> {
  const bytes = fc.oneof(
    fc.array(pairArb({ maxName: 300, maxValue: 5000 }), { maxLength: 10 }).map(encodePairs),
    fc
      .record({
        pairs: fc.array(pairArb({ maxName: 300, maxValue: 5000 }), { minLength: 1, maxLength: 10 }),
        mutations: mutationsArb,
        seed: fc.integer(),
      })
      .map(({ pairs, mutations, seed }) =>
        mutate(
          encodePairs(pairs),
          [],
          mutations.filter((m) => m.op !== "header"),
          seed,
        ),
      ),
    fc.uint8Array({ maxLength: 600 }).map((array) => Buffer.from(array)),
  );
  return fc.property(
    bytes,
    chunkPlanArb,
    fc.constantFrom(64, 1000, 4096, 1 << 20),
    (input, plan, maxBytes) => {
      const whole = withinMs(5000, () => decodeParams([input], maxBytes));
      const cut = withinMs(5000, () => decodeParams(chunk(input, plan), maxBytes));
      if (!equal(whole, cut))
        throw new Error(
          `decoding depends on the cut: whole ${JSON.stringify(whole).slice(0, 300)}, cut ${JSON.stringify(cut).slice(0, 300)}`,
        );
      if ("entries" in whole && input.length > maxBytes)
        throw new Error(`${input.length} bytes decoded under a ${maxBytes}-byte limit`);
      return true;
    },
  );
}
