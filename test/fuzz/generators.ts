// Shared fast-check generators for the FastCGI fuzzing: valid request streams with
// the outcome each must have, chunkings, mutations and garbage.

// Used by test/fuzz.test.ts and bench/fuzz.js. The wire encoding here is written
// from the spec, independently of src/, so it can serve as the oracle for src/'s parser.

import { createHash } from "node:crypto";
import fc from "fast-check";

/** Record types (FastCGI 1.0, section 8). */
export const T = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;

export const RESPONDER = 1;
export const AUTHORIZER = 2;
export const FILTER = 3;

export function isStreamType(type: number): boolean {
  return type >= T.PARAMS && type <= T.DATA;
}

// ---------------------------------------------------------------------------
// Deterministic bulk bytes. fast-check draws the shape (lengths, kinds, seeds:
// these shrink); the bytes themselves come from a seeded PRNG, because drawing
// 70,000 bytes one arbitrary at a time is slow and shrinks no better.

export type Rng = () => number;

/** mulberry32: small, fast, good enough to spread bytes and split points. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max]. */
export function between(random: Rng, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

export type ByteKind = "name" | "text" | "latin1" | "binary";

export interface ByteSpec {
  length: number;
  seed: number;
  kind: ByteKind;
}

const NAME_CHARS = Buffer.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");

export function makeBytes(spec: ByteSpec): Buffer {
  const random = rng(spec.seed);
  const out = Buffer.allocUnsafe(spec.length);
  for (let i = 0; i < spec.length; i++) {
    const r = random();
    switch (spec.kind) {
      case "name":
        out[i] = NAME_CHARS[Math.floor(r * NAME_CHARS.length)]!;
        break;
      case "text":
        out[i] = 0x20 + Math.floor(r * 95);
        break;
      case "latin1":
        // Mostly the high half: bytes that UTF-8 decoding would mangle.
        out[i] =
          r < 0.7 ? 0x80 + Math.floor((r / 0.7) * 128) : 0x20 + Math.floor(((r - 0.7) / 0.3) * 95);
        break;
      case "binary":
        out[i] = Math.floor(r * 256);
        break;
    }
  }
  return out;
}

/** Lengths biased to the edges of the encodings: 0, 127/128 (1- vs 4-byte lengths), 65535/65536 (one record or two). */
export function lengthArb(max: number): fc.Arbitrary<number> {
  const edges = [
    0, 1, 2, 7, 8, 9, 126, 127, 128, 129, 255, 256, 1000, 4096, 65535, 65536, 70_000,
  ].filter((n) => n <= max);
  return fc.oneof(
    { arbitrary: fc.constantFrom(...edges), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: Math.min(max, 40) }), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max }), weight: 1 },
  );
}

export function bytesArb(max: number, kinds: readonly ByteKind[]): fc.Arbitrary<Buffer> {
  return fc
    .record({ length: lengthArb(max), seed: fc.integer(), kind: fc.constantFrom(...kinds) })
    .map(makeBytes);
}

// ---------------------------------------------------------------------------
// Name-value pairs (spec 3.4), encoded here from scratch.

export interface GenPair {
  name: Buffer;
  value: Buffer;
  /** Encode a short (<128) length in the 4-byte form anyway: legal, and a parser must accept it. */
  longName: boolean;
  longValue: boolean;
}

function lengthField(length: number, long: boolean): Buffer {
  if (length < 0x80 && !long) return Buffer.from([length]);
  const field = Buffer.alloc(4);
  field.writeUInt32BE((length | 0x80000000) >>> 0);
  return field;
}

export function encodePairs(pairs: readonly GenPair[]): Buffer {
  const parts: Buffer[] = [];
  for (const pair of pairs) {
    parts.push(
      lengthField(pair.name.length, pair.longName),
      lengthField(pair.value.length, pair.longValue),
      pair.name,
      pair.value,
    );
  }
  return Buffer.concat(parts);
}

/** Names a web server really sends, and names that are traps for a JS object ("__proto__", "constructor", "0"). */
const SPECIAL_NAMES = [
  "",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "0",
  "1",
  "SCRIPT_NAME",
  "PATH_INFO",
  "QUERY_STRING",
  "REQUEST_METHOD",
  "HTTP_COOKIE",
  "CONTENT_LENGTH",
].map((name) => Buffer.from(name, "latin1"));

export function pairArb(options: { maxName: number; maxValue: number }): fc.Arbitrary<GenPair> {
  const name = fc.oneof(
    { arbitrary: fc.constantFrom(...SPECIAL_NAMES), weight: 1 },
    { arbitrary: bytesArb(options.maxName, ["name", "name", "text", "latin1"]), weight: 4 },
  );
  return fc.record({
    name,
    value: bytesArb(options.maxValue, ["text", "latin1", "binary"]),
    longName: fc.boolean(),
    longValue: fc.boolean(),
  });
}

// ---------------------------------------------------------------------------
// Records and streams

/** One record as it goes on the wire. */
export interface WireRecord {
  type: number;
  id: number;
  content: Buffer;
  padding: number;
  /** The value of the padding bytes, which a receiver must ignore. */
  padByte: number;
}

export function encodeRecords(records: readonly WireRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const record of records) {
    if (record.content.length > 0xffff || record.padding > 0xff)
      throw new RangeError("record does not fit its header");
    const header = Buffer.alloc(8);
    header[0] = 1;
    header[1] = record.type;
    header.writeUInt16BE(record.id, 2);
    header.writeUInt16BE(record.content.length, 4);
    header[6] = record.padding;
    parts.push(header, record.content, Buffer.alloc(record.padding, record.padByte));
  }
  return Buffer.concat(parts);
}

/** Offsets of each record's header in encodeRecords(records). */
export function headerOffsets(records: readonly WireRecord[]): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (const record of records) {
    offsets.push(offset);
    offset += 8 + record.content.length + record.padding;
  }
  return offsets;
}

function padding(random: Rng, contentLength: number, style: number): number {
  if (style === 0) return 0;
  if (style === 1) return (8 - (contentLength & 7)) & 7; // what the spec recommends
  return random() < 0.3 ? 255 : between(random, 0, 255);
}

/**
 * A stream (PARAMS, STDIN or DATA) cut into records of random sizes: mostly
 * full 65535-byte records, or random sizes, or tiny records (a pair split byte
 * by byte); each with random padding; then the empty record that ends it.
 */
export function streamRecords(
  type: number,
  id: number,
  bytes: Buffer,
  random: Rng,
  end = true,
): WireRecord[] {
  const records: WireRecord[] = [];
  const sizing = between(random, 0, 2);
  const padStyle = between(random, 0, 2);
  const padByte = between(random, 0, 255);
  for (let offset = 0; offset < bytes.length;) {
    const left = bytes.length - offset;
    let size: number;
    if (sizing === 0) size = Math.min(0xffff, left);
    else if (sizing === 1) size = between(random, 1, Math.min(0xffff, left));
    else
      size =
        bytes.length <= 4000
          ? between(random, 1, Math.min(8, left))
          : between(random, 1, Math.min(2000, left));
    records.push({
      type,
      id,
      content: bytes.subarray(offset, offset + size),
      padding: padding(random, size, padStyle),
      padByte,
    });
    offset += size;
  }
  if (end)
    records.push({
      type,
      id,
      content: Buffer.alloc(0),
      padding: padding(random, 0, padStyle),
      padByte,
    });
  return records;
}

/** Merges per-request record lists in a random order that keeps each list's own order. */
export function interleave(lists: readonly WireRecord[][], random: Rng): WireRecord[] {
  const positions = lists.map(() => 0);
  const out: WireRecord[] = [];
  for (;;) {
    const open = lists
      .map((list, index) => (positions[index] < list.length ? index : -1))
      .filter((index) => index >= 0);
    if (open.length === 0) return out;
    // Runs of one request, as a web server writes them, with switches in between.
    const pick = open[between(random, 0, open.length - 1)];
    const run = between(random, 1, 4);
    for (let i = 0; i < run && positions[pick] < lists[pick].length; i++)
      out.push(lists[pick][positions[pick]++]);
  }
}

// ---------------------------------------------------------------------------
// Requests and what they must produce

export interface GenRequest {
  id: number;
  role: number;
  keepConn: boolean;
  /** Flag bits other than FCGI_KEEP_CONN, which a receiver must ignore. */
  otherFlags: number;
  /** The 5 reserved bytes of the BEGIN_REQUEST body. */
  reserved: Buffer;
  pairs: GenPair[];
  stdin: Buffer;
  /** FCGI_DATA, sent for the Filter role only. */
  data: Buffer;
  /** An Authorizer gets no body; a web server may still send an (empty or not) STDIN. */
  sendStdin: boolean;
  seed: number;
}

export interface GenManagement {
  type: number;
  /** GET_VALUES: the names asked about (known and unknown ones). */
  asked: string[];
}

export interface GenRound {
  requests: GenRequest[];
  management: GenManagement[];
  seed: number;
}

/** One connection: rounds of requests; a round starts once every response of the previous one has arrived. */
export interface GenConnection {
  rounds: GenRound[];
}

export interface Digest {
  length: number;
  sha256: string;
}

export function digest(bytes: Buffer): Digest {
  return { length: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** What the server must answer for a request (see test/fixtures/proof/echo.js for "echo"). */
export type Expected =
  | { id: number; kind: "unknown-role" }
  | { id: number; kind: "too-large" }
  | {
      id: number;
      kind: "echo";
      body: { role: string; params: [string, string][]; stdin: Digest; data: Digest | null };
    };

const ROLE_NAMES: Record<number, string> = {
  [RESPONDER]: "responder",
  [AUTHORIZER]: "authorizer",
  [FILTER]: "filter",
};

export interface Limits {
  maxParamsBytes: number;
}

export function expectedFor(request: GenRequest, limits: Limits): Expected {
  if (!(request.role in ROLE_NAMES)) return { id: request.id, kind: "unknown-role" };
  if (encodePairs(request.pairs).length > limits.maxParamsBytes)
    return { id: request.id, kind: "too-large" };
  const params = new Map<string, string>();
  for (const pair of request.pairs) {
    const name = pair.name.toString("latin1");
    params.delete(name); // the last value wins
    params.set(name, pair.value.toString("latin1"));
  }
  // PEP 3333: always present.
  for (const name of ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"])
    if (!params.has(name)) params.set(name, "");
  const sorted = [...params]
    .filter(([name]) => !name.startsWith("tsgi."))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    id: request.id,
    kind: "echo",
    body: {
      role: ROLE_NAMES[request.role],
      params: sorted,
      stdin: digest(request.role === AUTHORIZER ? Buffer.alloc(0) : request.stdin),
      data: request.role === FILTER ? digest(request.data) : null,
    },
  };
}

export function beginBody(request: GenRequest): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16BE(request.role, 0);
  body[2] = (request.keepConn ? 1 : 0) | (request.otherFlags & 0xfe);
  request.reserved.copy(body, 3, 0, 5);
  return body;
}

/** Every record of one request, in order. */
export function requestRecords(request: GenRequest): WireRecord[] {
  const random = rng(request.seed);
  const records: WireRecord[] = [
    {
      type: T.BEGIN_REQUEST,
      id: request.id,
      content: beginBody(request),
      padding: padding(random, 8, between(random, 0, 2)),
      padByte: 0,
    },
  ];
  records.push(...streamRecords(T.PARAMS, request.id, encodePairs(request.pairs), random));
  if (request.role !== AUTHORIZER || request.sendStdin)
    records.push(...streamRecords(T.STDIN, request.id, request.stdin, random));
  if (request.role === FILTER)
    records.push(...streamRecords(T.DATA, request.id, request.data, random));
  return records;
}

export const KNOWN_VALUE_NAMES = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"];

export function managementRecord(management: GenManagement): WireRecord {
  if (management.type !== T.GET_VALUES) {
    // Some content (0-12 bytes), so a record cut across chunks must still come whole.
    const content = Buffer.alloc(management.type % 13, management.type);
    return {
      type: management.type,
      id: 0,
      content,
      padding: (8 - (content.length & 7)) & 7,
      padByte: 0,
    };
  }
  const content = encodePairs(
    management.asked.map((name) => ({
      name: Buffer.from(name, "latin1"),
      value: Buffer.alloc(0),
      longName: false,
      longValue: false,
    })),
  );
  return {
    type: T.GET_VALUES,
    id: 0,
    content,
    padding: (8 - (content.length & 7)) & 7,
    padByte: 0,
  };
}

/** The whole byte stream of a round, and where each request's records are. */
export function roundRecords(round: GenRound): WireRecord[] {
  const random = rng(round.seed);
  const lists = round.requests.map(requestRecords);
  // Management records go out between the requests' records, in the order given (their answers come in that order).
  if (round.management.length > 0) lists.push(round.management.map(managementRecord));
  return interleave(lists, random);
}

// ---------------------------------------------------------------------------
// Arbitraries for whole requests and connections

export interface RequestShape {
  maxPairs: number;
  maxName: number;
  maxValue: number;
  maxBody: number;
}

/** Ids a web server likes (1), the boundaries of the id field, and the rest. */
const idArb = fc.oneof(fc.constantFrom(1, 2, 255, 256, 65535), fc.integer({ min: 1, max: 65535 }));

export function requestArb(shape: RequestShape): fc.Arbitrary<GenRequest> {
  return fc.record({
    id: idArb,
    // Mostly Responders; Authorizer, Filter, and now and then a role that does not exist.
    role: fc.oneof(
      { arbitrary: fc.constant(RESPONDER), weight: 6 },
      { arbitrary: fc.constantFrom(AUTHORIZER, FILTER), weight: 3 },
      { arbitrary: fc.constantFrom(0, 4, 0x0101, 0xffff), weight: 1 },
    ),
    keepConn: fc.boolean(),
    otherFlags: fc.oneof(
      { arbitrary: fc.constant(0), weight: 4 },
      { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
    ),
    reserved: fc.oneof(
      fc.constant(Buffer.alloc(5)),
      fc.uint8Array({ minLength: 5, maxLength: 5 }).map((bytes) => Buffer.from(bytes)),
    ),
    pairs: fc.array(pairArb(shape), { maxLength: shape.maxPairs }),
    stdin: bytesArb(shape.maxBody, ["binary", "text"]),
    data: bytesArb(shape.maxBody, ["binary"]),
    sendStdin: fc.boolean(),
    seed: fc.integer(),
  });
}

export const managementArb: fc.Arbitrary<GenManagement> = fc.oneof(
  {
    arbitrary: fc.record({
      type: fc.constant<number>(T.GET_VALUES),
      asked: fc.array(
        fc.oneof(fc.constantFrom(...KNOWN_VALUE_NAMES), fc.constantFrom("FCGI_OTHER", "X", "")),
        { maxLength: 5 },
      ),
    }),
    weight: 2,
  },
  {
    // Management types the application does not know, stream types (4-8) included:
    // on id 0 they are management records too.
    arbitrary: fc.record({
      type: fc.oneof(
        fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 8, T.GET_VALUES_RESULT, T.UNKNOWN_TYPE),
        fc.integer({ min: 12, max: 255 }),
      ),
      asked: fc.constant<string[]>([]),
    }),
    weight: 1,
  },
);

/**
 * A connection of 1-3 rounds of 1-4 requests. Ids are unique within a round
 * (reusing an id in flight is a protocol error) and reused across rounds, as
 * web servers do. Only a lone request in the last round may leave KEEP_CONN
 * off: the server then closes the connection after it, which would lose any
 * request still to come.
 */
export function connectionArb(
  shape: RequestShape,
  options: { maxRounds?: number; maxPerRound?: number } = {},
): fc.Arbitrary<GenConnection> {
  const round = fc.record({
    requests: fc.array(requestArb(shape), { minLength: 1, maxLength: options.maxPerRound ?? 4 }),
    management: fc.array(managementArb, { maxLength: 2 }),
    seed: fc.integer(),
  });
  return fc.array(round, { minLength: 1, maxLength: options.maxRounds ?? 3 }).map((rounds) => {
    const fixed = rounds.map((r, roundIndex) => {
      const used = new Set<number>();
      const last = roundIndex === rounds.length - 1;
      const requests = r.requests.map((request) => {
        let id = request.id;
        while (used.has(id)) id = (id % 65535) + 1;
        used.add(id);
        return {
          ...request,
          id,
          keepConn: last && r.requests.length === 1 ? request.keepConn : true,
        };
      });
      // Nor may management records share a round with it: they could come after the close.
      const closing = requests.length === 1 && !requests[0].keepConn;
      return { ...r, requests, management: closing ? [] : r.management };
    });
    return { rounds: fixed };
  });
}

/** Sizes to cut a byte stream into, cycled: single bytes, header-sized pieces, odd sizes and big blocks. */
export const chunkPlanArb: fc.Arbitrary<number[]> = fc.array(
  fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: 16 }), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: 1500 }), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 70_000 }), weight: 1 },
  ),
  { minLength: 1, maxLength: 40 },
);

/** Cuts `bytes` at the sizes of `plan` (cycled), in at most `maxChunks` pieces. */
export function chunk(bytes: Buffer, plan: readonly number[], maxChunks = Infinity): Buffer[] {
  const floor = Number.isFinite(maxChunks) ? Math.ceil(bytes.length / maxChunks) : 1;
  const chunks: Buffer[] = [];
  for (let offset = 0, i = 0; offset < bytes.length; i++) {
    const size = Math.max(plan[i % plan.length], floor);
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

// ---------------------------------------------------------------------------
// Arbitrary well-formed records (any type, id, content, padding) for the parser

export const anyRecordArb: fc.Arbitrary<WireRecord> = fc.record({
  type: fc.oneof(fc.integer({ min: 1, max: 11 }), fc.integer({ min: 0, max: 255 })),
  id: fc.oneof(fc.constantFrom(0, 1, 65535), fc.integer({ min: 0, max: 65535 })),
  content: bytesArb(0xffff, ["binary"]),
  padding: fc.oneof(fc.constantFrom(0, 1, 7, 255), fc.integer({ min: 0, max: 255 })),
  padByte: fc.integer({ min: 0, max: 255 }),
});

// ---------------------------------------------------------------------------
// Garbage: random bytes, mutated valid streams, and well-framed records with random meaning

export interface Mutation {
  op: "flip" | "set" | "insert" | "delete" | "duplicate" | "truncate" | "header";
  position: number;
  length: number;
  value: number;
  field: number;
}

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(
  fc.record({
    op: fc.constantFrom<Mutation["op"]>(
      "flip",
      "set",
      "insert",
      "delete",
      "duplicate",
      "truncate",
      "header",
      "header",
      "header",
    ),
    position: fc.nat(),
    length: fc.integer({ min: 1, max: 64 }),
    value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })),
    field: fc.integer({ min: 1, max: 7 }),
  }),
  { minLength: 1, maxLength: 6 },
);

/**
 * Applies mutations to an encoded stream. "header" rewrites one header field
 * (type, id, lengths, padding) of a real record but keeps its version byte, so
 * the damage goes deeper than the first byte check.
 */
export function mutate(
  bytes: Buffer,
  records: readonly WireRecord[],
  mutations: readonly Mutation[],
  seed: number,
): Buffer {
  const random = rng(seed);
  let out = Buffer.from(bytes);
  const offsets = headerOffsets(records);
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = m.position % out.length;
    switch (m.op) {
      case "flip":
        out[at] = out[at] ^ (1 << (m.value & 7));
        break;
      case "set":
        out[at] = m.value;
        break;
      case "insert": {
        const extra = Buffer.alloc(m.length);
        for (let i = 0; i < extra.length; i++) extra[i] = between(random, 0, 255);
        out = Buffer.concat([out.subarray(0, at), extra, out.subarray(at)]);
        break;
      }
      case "delete":
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.length)]);
        break;
      case "duplicate":
        out = Buffer.concat([out.subarray(0, at + m.length), out.subarray(at)]);
        break;
      case "truncate":
        out = out.subarray(0, at);
        break;
      case "header": {
        const header = offsets[m.position % offsets.length];
        if (header + m.field < out.length) out[header + m.field] = m.value;
        break;
      }
    }
  }
  return out;
}

/** Records with valid framing and random meaning: random BEGIN bodies, params bytes, ABORTs, ids in use or not. */
export const recordishArb: fc.Arbitrary<WireRecord[]> = fc.array(
  fc.record({
    type: fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 9 }), weight: 5 },
      { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
    ),
    id: fc.oneof(
      { arbitrary: fc.constantFrom(0, 1, 2), weight: 5 },
      { arbitrary: fc.integer({ min: 0, max: 65535 }), weight: 1 },
    ),
    content: fc.oneof(
      { arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)), weight: 4 },
      { arbitrary: bytesArb(3000, ["binary", "text"]), weight: 1 },
    ),
    padding: fc.integer({ min: 0, max: 16 }),
    padByte: fc.constant(0),
  }),
  { minLength: 1, maxLength: 30 },
);

/** One garbage connection's bytes: random bytes, a mutated valid stream, or well-framed random records. */
export function garbageArb(shape: RequestShape): fc.Arbitrary<Buffer> {
  const mutated = fc
    .record({
      requests: fc.array(requestArb(shape), { minLength: 1, maxLength: 3 }),
      seed: fc.integer(),
      mutations: mutationsArb,
    })
    .map(({ requests, seed, mutations }) => {
      const records = roundRecords({ requests, management: [], seed });
      return mutate(encodeRecords(records), records, mutations, seed);
    });
  return fc.oneof(
    fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes)),
    mutated,
    mutated,
    recordishArb.map(encodeRecords),
  );
}

/** Decodes a complete name-value buffer (GET_VALUES_RESULT content), the oracle's own way; throws on a malformed one. */
export function decodePairs(bytes: Buffer): [string, string][] {
  const pairs: [string, string][] = [];
  let at = 0;
  const length = (): number => {
    if (at >= bytes.length) throw new Error("truncated length");
    if (bytes[at] < 0x80) return bytes[at++];
    if (at + 4 > bytes.length) throw new Error("truncated length");
    const value = bytes.readUInt32BE(at) & 0x7fffffff;
    at += 4;
    return value;
  };
  while (at < bytes.length) {
    const nameLength = length();
    const valueLength = length();
    if (at + nameLength + valueLength > bytes.length) throw new Error("truncated pair");
    pairs.push([
      bytes.toString("latin1", at, at + nameLength),
      bytes.toString("latin1", at + nameLength, at + nameLength + valueLength),
    ]);
    at += nameLength + valueLength;
  }
  return pairs;
}

/** The params a request's PARAMS stream decodes to: the last value of a repeated name wins; sorted by name. */
export function paramsOf(request: GenRequest): [string, string][] {
  const params = new Map<string, string>();
  for (const pair of request.pairs)
    params.set(pair.name.toString("latin1"), pair.value.toString("latin1"));
  return [...params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
