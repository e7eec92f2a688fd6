// Byte-level tests for the FastCGI wire format: record parsing, params decoding and record encoding.

import { describe, expect, it } from "vitest";
import {
  FCGI_KEEP_CONN,
  FastCgiProtocolError,
  ParamsDecoder,
  ParamsTooLargeError,
  ProtocolStatus,
  RecordType,
  Role,
  decodeNameValuePairs,
  encodeNameValuePairs,
} from "../src/fastcgi/protocol.js";
import {
  RecordParser,
  encodeBeginRequest,
  encodeEndOfStream,
  encodeEndRequest,
  encodeGetValuesResult,
  encodeRecord,
  encodeRecordHeader,
  encodeResponseEnd,
  encodeStream,
  encodeUnknownType,
  encodeWholeResponse,
  parseBeginRequest,
  type RecordHandler,
} from "../src/fastcgi/records.js";

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

type ParserEvent =
  | { kind: "record"; type: number; requestId: number; content: Buffer }
  | { kind: "stream"; type: number; requestId: number; data: Buffer }
  | { kind: "error"; error: FastCgiProtocolError };

class Collector implements RecordHandler {
  readonly events: ParserEvent[] = [];
  onRecord(type: number, requestId: number, content: Buffer): void {
    this.events.push({ kind: "record", type, requestId, content });
  }
  onStreamData(type: number, requestId: number, data: Buffer): void {
    this.events.push({ kind: "stream", type, requestId, data });
  }
  onError(error: FastCgiProtocolError): void {
    this.events.push({ kind: "error", error });
  }
}

function parseChunks(chunks: Buffer[]): ParserEvent[] {
  const collector = new Collector();
  const parser = new RecordParser(collector);
  for (const chunk of chunks) parser.push(chunk);
  return collector.events;
}

/** Events as strings, with consecutive stream pieces merged because piece boundaries depend on chunking. */
function normalize(events: ParserEvent[]): string[] {
  const out: string[] = [];
  let streamKey = "";
  let streamParts: Buffer[] = [];
  for (const event of events) {
    const key =
      event.kind === "stream" && event.data.length > 0
        ? `stream type=${event.type} id=${event.requestId}`
        : "";
    if (streamKey !== "" && key !== streamKey)
      out.push(`${streamKey} ${Buffer.concat(streamParts).toString("hex")}`);
    if (key !== streamKey) streamParts = [];
    streamKey = key;
    if (event.kind === "stream" && key !== "") streamParts.push(event.data);
    else if (event.kind === "stream") out.push(`end type=${event.type} id=${event.requestId}`);
    else if (event.kind === "record")
      out.push(`record type=${event.type} id=${event.requestId} ${event.content.toString("hex")}`);
    else out.push(`error ${event.error.message}`);
  }
  if (streamKey !== "") out.push(`${streamKey} ${Buffer.concat(streamParts).toString("hex")}`);
  return out;
}

/** Compares bytes as hex, which is fast for large buffers and prints a readable diff. */
function expectBytes(actual: Uint8Array | Uint8Array[], expected: Uint8Array): void {
  const joined = Array.isArray(actual) ? Buffer.concat(actual) : Buffer.from(actual);
  expect(joined.toString("hex")).toBe(Buffer.from(expected).toString("hex"));
}

interface RequestResult {
  begin: { role: number; flags: number } | null;
  params: Map<string, string> | null;
  stdin: string;
  stdinEnded: boolean;
  errors: string[];
}

/** Plays the application side of one request, the way a connection handler would wire the parts. */
function runRequest(chunks: Buffer[], maxParamsBytes?: number): RequestResult {
  const result: RequestResult = {
    begin: null,
    params: null,
    stdin: "",
    stdinEnded: false,
    errors: [],
  };
  const decoder = new ParamsDecoder(
    maxParamsBytes === undefined ? {} : { maxBytes: maxParamsBytes },
  );
  const stdin: Buffer[] = [];
  const parser = new RecordParser({
    onRecord(type, _requestId, content) {
      if (type === RecordType.BEGIN_REQUEST) result.begin = parseBeginRequest(content);
    },
    onStreamData(type, _requestId, data) {
      if (type === RecordType.PARAMS) {
        if (data.length === 0) result.params = new Map(Object.entries(decoder.end()));
        else decoder.push(data);
      } else if (type === RecordType.STDIN) {
        if (data.length === 0) result.stdinEnded = true;
        else stdin.push(data);
      }
    },
    onError(error) {
      result.errors.push(error.message);
    },
  });
  for (const chunk of chunks) parser.push(chunk);
  result.stdin = Buffer.concat(stdin).toString("latin1");
  return result;
}

function splitsInTwo(stream: Buffer): Buffer[][] {
  const splits: Buffer[][] = [];
  for (let at = 1; at < stream.length; at++)
    splits.push([stream.subarray(0, at), stream.subarray(at)]);
  return splits;
}

function bytewise(stream: Buffer): Buffer[] {
  return Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
}

describe("RecordParser", () => {
  it("parses every record type, routing stream types to onStreamData", () => {
    const chunks: Buffer[] = [];
    const types = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 255];
    for (const type of types)
      chunks.push(encodeRecord(type, 0x0100 + type, Buffer.from([type, 0xaa, 0x55])));
    const events = parseChunks([Buffer.concat(chunks)]);
    expect(events).toHaveLength(types.length);
    events.forEach((event, i) => {
      const type = types[i];
      const isStream = type >= RecordType.PARAMS && type <= RecordType.DATA;
      expect(event.kind).toBe(isStream ? "stream" : "record");
      if (event.kind === "error") throw event.error;
      expect(event.type).toBe(type);
      expect(event.requestId).toBe(0x0100 + type);
      expect(event.kind === "stream" ? event.data : event.content).toEqual(
        Buffer.from([type, 0xaa, 0x55]),
      );
    });
  });

  it("delivers a stream-type record on request id 0 whole, once, as a management record, however it is cut", () => {
    const content = Buffer.from("0123456789abcdefghij");
    const stream = Buffer.concat([
      encodeRecord(RecordType.STDIN, 0, content),
      encodeEndOfStream(RecordType.PARAMS, 0),
    ]);
    const expected = [`record type=5 id=0 ${content.toString("hex")}`, "record type=4 id=0 "];
    for (const chunks of [[stream], ...splitsInTwo(stream), bytewise(stream)]) {
      expect(normalize(parseChunks(chunks))).toEqual(expected);
    }
  });

  it("delivers zero-length records: empty stream records end the stream, others have empty content", () => {
    const stream = Buffer.concat([
      encodeEndOfStream(RecordType.PARAMS, 1),
      encodeEndOfStream(RecordType.STDIN, 1),
      encodeRecordHeader(RecordType.ABORT_REQUEST, 1, 0, 0),
      encodeRecordHeader(RecordType.GET_VALUES, 0, 0, 0),
    ]);
    const expected = [
      "end type=4 id=1",
      "end type=5 id=1",
      "record type=2 id=1 ",
      "record type=9 id=0 ",
    ];
    expect(normalize(parseChunks([stream]))).toEqual(expected);
    // A zero-length record at the very end of a chunk must not wait for more bytes.
    expect(normalize(parseChunks([stream.subarray(0, 8)]))).toEqual(expected.slice(0, 1));
  });

  describe("a realistic request stream", () => {
    const pairs: [string, string][] = [
      ["SCRIPT_NAME", "/index.php"],
      ["HTTP_X_LONG", "L".repeat(200)],
      ["QUERY_STRING", "a=1&b=2"],
      ["REQUEST_METHOD", "POST"],
      ["EMPTY", ""],
    ];
    const params = encodeNameValuePairs(pairs);
    // Inside the 4-byte value length of HTTP_X_LONG: after its name length byte and two length bytes.
    const splitInLength = encodeNameValuePairs(pairs.slice(0, 1)).length + 1 + 2;
    // Inside the value of QUERY_STRING.
    const splitInValue = encodeNameValuePairs(pairs.slice(0, 3)).length - 3;
    const stream = Buffer.concat([
      encodeRecord(RecordType.BEGIN_REQUEST, 1, encodeBeginRequest(Role.RESPONDER, FCGI_KEEP_CONN)),
      encodeRecord(RecordType.PARAMS, 1, params.subarray(0, splitInLength)),
      encodeRecord(RecordType.PARAMS, 1, params.subarray(splitInLength, splitInValue), 0),
      encodeRecord(RecordType.PARAMS, 1, params.subarray(splitInValue), 13),
      encodeEndOfStream(RecordType.PARAMS, 1),
      encodeRecord(RecordType.STDIN, 1, Buffer.from("hello=wor")),
      encodeRecord(RecordType.STDIN, 1, Buffer.from("ld&x=\u00e9", "latin1"), 5),
      encodeEndOfStream(RecordType.STDIN, 1),
    ]);
    const expected: RequestResult = {
      begin: { role: Role.RESPONDER, flags: FCGI_KEEP_CONN },
      params: new Map(pairs),
      stdin: "hello=world&x=\u00e9",
      stdinEnded: true,
      errors: [],
    };

    it("really splits a pair inside its 4-byte length and another inside its value", () => {
      expect(params[splitInLength - 3]).toBe(11); // name length of HTTP_X_LONG
      expect(params[splitInLength - 2] & 0x80).toBe(0x80); // first byte of a 4-byte length
      expect(params.subarray(splitInValue - 4, splitInValue + 3).toString("latin1")).toBe(
        "a=1&b=2",
      );
    });

    it("decodes when fed whole", () => {
      expect(runRequest([stream])).toEqual(expected);
    });

    it("gives identical results when split in two at every byte offset", () => {
      const reference = normalize(parseChunks([stream]));
      for (const chunks of splitsInTwo(stream)) {
        expect(normalize(parseChunks(chunks))).toEqual(reference);
        expect(runRequest(chunks)).toEqual(expected);
      }
    });

    it("gives identical results when fed one byte at a time", () => {
      const events = parseChunks(bytewise(stream));
      expect(normalize(events)).toEqual(normalize(parseChunks([stream])));
      expect(runRequest(bytewise(stream))).toEqual(expected);
    });

    it("never delivers an empty piece except for an empty record", () => {
      for (const chunks of [...splitsInTwo(stream), bytewise(stream)]) {
        const ends = parseChunks(chunks).filter((e) => e.kind === "stream" && e.data.length === 0);
        expect(ends).toHaveLength(2);
      }
    });
  });

  it("skips input padding (3+5 and 0+255), also when split across chunks", () => {
    const stream = Buffer.concat([
      hex("01 05 00 01 00 03 05 00"),
      Buffer.from("abc"),
      Buffer.alloc(5, 0xff), // padding content is ignored whatever it holds
      hex("01 04 00 01 00 00 ff 00"),
      Buffer.alloc(255, 0xee),
      hex("01 02 00 01 00 00 00 00"),
    ]);
    const expected = ["stream type=5 id=1 616263", "end type=4 id=1", "record type=2 id=1 "];
    expect(normalize(parseChunks([stream]))).toEqual(expected);
    for (const chunks of splitsInTwo(stream))
      expect(normalize(parseChunks(chunks))).toEqual(expected);
    expect(normalize(parseChunks(bytewise(stream)))).toEqual(expected);
  });

  it("reports version byte 2 as an error and stops parsing", () => {
    const collector = new Collector();
    const parser = new RecordParser(collector);
    parser.push(
      Buffer.concat([
        encodeRecord(RecordType.STDIN, 1, Buffer.from("ok")),
        hex("02 05 00 01 00 00 00 00"),
      ]),
    );
    parser.push(encodeRecord(RecordType.STDIN, 1, Buffer.from("ignored")));
    expect(parser.isStopped).toBe(true);
    expect(collector.events.map((e) => e.kind)).toEqual(["stream", "error"]);
    const error = collector.events[1];
    expect(error.kind === "error" && error.error).toBeInstanceOf(FastCgiProtocolError);
    expect(error.kind === "error" && error.error.message).toMatch(/version 2 \(expected 1\)/);
  });

  it("reports garbage bytes (an HTTP request) exactly once, however they are chunked", () => {
    const garbage = Buffer.from("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    for (const chunks of [[garbage], bytewise(garbage), ...splitsInTwo(garbage)]) {
      const events = parseChunks(chunks);
      expect(events).toHaveLength(1);
      expect(events[0].kind).toBe("error");
    }
  });

  it("delivers a record within one chunk without copying (zero-copy subarrays)", () => {
    const begin = encodeRecord(RecordType.BEGIN_REQUEST, 7, encodeBeginRequest(Role.RESPONDER, 0));
    const chunk = Buffer.concat([
      begin,
      encodeRecord(RecordType.STDIN, 7, Buffer.from("body bytes")),
    ]);
    const events = parseChunks([chunk]);
    const [beginEvent, stdinEvent] = events;
    if (beginEvent.kind !== "record" || stdinEvent.kind !== "stream")
      throw new Error("unexpected events");
    expect(beginEvent.content.buffer).toBe(chunk.buffer);
    expect(beginEvent.content.byteOffset).toBe(chunk.byteOffset + 8);
    expect(stdinEvent.data.buffer).toBe(chunk.buffer);
    expect(stdinEvent.data.byteOffset).toBe(chunk.byteOffset + begin.length + 8);
    expect(stdinEvent.data.toString()).toBe("body bytes");
  });

  it("delivers a stream record spanning chunks as pieces of each chunk, not a copy", () => {
    const body = Buffer.alloc(40000, 0x61);
    const record = encodeRecord(RecordType.STDIN, 3, body);
    const first = Buffer.from(record.subarray(0, 20000));
    const second = Buffer.from(record.subarray(20000));
    const events = parseChunks([first, second]);
    expect(events).toHaveLength(2);
    const [a, b] = events;
    if (a.kind !== "stream" || b.kind !== "stream") throw new Error("unexpected events");
    expect(a.data.buffer).toBe(first.buffer);
    expect(b.data.buffer).toBe(second.buffer);
    expect(a.data.length + b.data.length).toBe(40000);
  });

  it("assembles a non-stream record spanning chunks into one whole content", () => {
    const content = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    const record = encodeRecord(RecordType.GET_VALUES, 0, content);
    const events = parseChunks([
      record.subarray(0, 5),
      record.subarray(5, 50),
      record.subarray(50),
    ]);
    expect(events).toEqual([
      { kind: "record", type: RecordType.GET_VALUES, requestId: 0, content },
    ]);
  });

  it("honours stop() called from a handler for the rest of the chunk", () => {
    const events: number[] = [];
    const parser: RecordParser = new RecordParser({
      onRecord(type) {
        events.push(type);
        parser.stop();
      },
      onStreamData() {},
      onError() {},
    });
    parser.push(
      Buffer.concat([
        encodeRecordHeader(RecordType.ABORT_REQUEST, 1, 0, 0),
        encodeRecordHeader(RecordType.ABORT_REQUEST, 2, 0, 0),
      ]),
    );
    expect(events).toEqual([RecordType.ABORT_REQUEST]);
  });
});

describe("ParamsDecoder", () => {
  it("decodes a 70,000-byte HTTP_COOKIE split across two FCGI_PARAMS records intact (node-fastcgi delivered 59,984 bytes)", () => {
    const cookie = Array.from({ length: 7000 }, (_, i) =>
      `k${i % 10}=v${i % 7};`.padEnd(10, " "),
    ).join("");
    expect(cookie.length).toBe(70000);
    const params = encodeNameValuePairs([
      ["HTTP_COOKIE", cookie],
      ["REQUEST_METHOD", "GET"],
    ]);
    const stream = Buffer.concat([
      encodeRecord(RecordType.BEGIN_REQUEST, 1, encodeBeginRequest(Role.RESPONDER, 0)),
      encodeRecord(RecordType.PARAMS, 1, params.subarray(0, 65535)),
      encodeRecord(RecordType.PARAMS, 1, params.subarray(65535)),
      encodeEndOfStream(RecordType.PARAMS, 1),
      encodeEndOfStream(RecordType.STDIN, 1),
    ]);
    const socketLikeChunks: Buffer[] = [];
    for (let at = 0; at < stream.length; at += 16384)
      socketLikeChunks.push(stream.subarray(at, at + 16384));
    for (const chunks of [[stream], socketLikeChunks]) {
      const result = runRequest(chunks);
      expect(result.errors).toEqual([]);
      expect(result.params?.get("HTTP_COOKIE")?.length).toBe(70000);
      expect(result.params?.get("HTTP_COOKIE")).toBe(cookie);
      expect(result.params?.get("REQUEST_METHOD")).toBe("GET");
    }
  });

  it("gives each request its own values though it reuses strings across requests: many names sharing cache slots, values of equal length that differ", () => {
    // 2000 names cannot each have their own slot in the decoder's caches, and
    // values like "a1"/"b1" differ only in a byte: a cache that answered from a
    // shared slot or from the length alone would hand out another request's value.
    let seed = 1;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const names = Array.from({ length: 2000 }, (_, i) => `HTTP_X_${i.toString(36).toUpperCase()}`);
    for (let request = 0; request < 300; request++) {
      const pairs: [string, string][] = [];
      for (let i = 0; i < 40; i++) {
        const name = names[next(names.length)];
        const value = "ab"[next(2)] + String(next(3)) + (next(10) === 0 ? "x".repeat(70) : "");
        pairs.push([name, value]);
      }
      const decoder = new ParamsDecoder();
      decoder.push(encodeNameValuePairs(pairs));
      const expected: Record<string, string> = {};
      for (const [name, value] of pairs) expected[name] = value;
      expect(decoder.end()).toEqual(expected);
    }
  });

  it('decodes Latin-1 bytes as Latin-1, not UTF-8 (0xE9 is "\\u00e9", not U+FFFD)', () => {
    expect(decodeNameValuePairs(hex("01 01 41 e9"))).toEqual(new Map([["A", "\u00e9"]]));
    expect(decodeNameValuePairs(hex("01 02 ff c3 a9"))).toEqual(
      new Map([["\u00ff", "\u00c3\u00a9"]]),
    );
    expect(encodeNameValuePairs([["X", "\u00e9"]])).toEqual(hex("01 01 58 e9"));
    expect(() => encodeNameValuePairs([["X", "\u0101"]])).toThrow(RangeError);
  });

  it("accepts empty names, empty values and short lengths in 4-byte form", () => {
    expect(decodeNameValuePairs(hex("00 01 78"))).toEqual(new Map([["", "x"]]));
    expect(decodeNameValuePairs(hex("01 00 41"))).toEqual(new Map([["A", ""]]));
    expect(decodeNameValuePairs(hex("00 00"))).toEqual(new Map([["", ""]]));
    expect(
      decodeNameValuePairs(Buffer.concat([hex("80 00 00 05 01"), Buffer.from("HELLOx")])),
    ).toEqual(new Map([["HELLO", "x"]]));
    expect(decodeNameValuePairs(Buffer.alloc(0))).toEqual(new Map());
  });

  it("switches between 1- and 4-byte lengths at 127/128", () => {
    const name127 = "N".repeat(127);
    const value128 = "v".repeat(128);
    const encoded = encodeNameValuePairs([[name127, value128]]);
    expect(encoded.subarray(0, 5)).toEqual(hex("7f 80 00 00 80"));
    expect(encoded.length).toBe(5 + 127 + 128);
    for (const chunks of [[encoded], ...splitsInTwo(encoded), bytewise(encoded)]) {
      const decoder = new ParamsDecoder();
      for (const chunk of chunks) decoder.push(chunk);
      expect(decoder.end()).toEqual({ [name127]: value128 });
    }
  });

  it("encodes lengths 0, 127, 128, 1000 and 33554431 as the spec says", () => {
    const lengthField = (length: number) => {
      const encoded = encodeNameValuePairs([["", "x".repeat(length)]]);
      expect(encoded[0]).toBe(0); // the empty name's length
      return encoded.subarray(1, length < 128 ? 2 : 5);
    };
    expect(lengthField(0)).toEqual(hex("00"));
    expect(lengthField(127)).toEqual(hex("7f"));
    expect(lengthField(128)).toEqual(hex("80 00 00 80"));
    expect(lengthField(1000)).toEqual(hex("80 00 03 e8"));
    expect(lengthField(33554431)).toEqual(hex("81 ff ff ff"));
  });

  it("decodes a 4-byte length of 1000 and repeated names keep the last value", () => {
    const value = "z".repeat(1000);
    const bytes = Buffer.concat([hex("01 80 00 03 e8 41"), Buffer.from(value), hex("01 01 41 42")]);
    expect(decodeNameValuePairs(bytes)).toEqual(new Map([["A", "B"]]));
    expect(decodeNameValuePairs(bytes.subarray(0, 1006)).get("A")).toBe(value);
  });

  it("reports pair lengths larger than the stream as an error at end, not a crash", () => {
    const cases = [hex("05 05 61 62"), hex("80 00"), hex("01"), hex("01 80 00 00 10 41 62")];
    for (const bytes of cases) {
      const decoder = new ParamsDecoder();
      decoder.push(bytes);
      expect(() => decoder.end()).toThrow(FastCgiProtocolError);
      expect(() => decoder.end()).toThrow(/ended inside a name-value pair/);
    }
  });

  it("refuses params beyond maxBytes instead of buffering them", () => {
    const decoder = new ParamsDecoder({ maxBytes: 100 });
    decoder.push(encodeNameValuePairs([["A", "x".repeat(50)]]));
    expect(() => decoder.push(encodeNameValuePairs([["B", "y".repeat(50)]]))).toThrow(
      /exceed the 100-byte limit/,
    );
    // The decoder stays failed.
    expect(() => decoder.push(Buffer.alloc(0))).toThrow(FastCgiProtocolError);
    expect(() => decoder.end()).toThrow(FastCgiProtocolError);
  });

  it("refuses a declared pair length beyond maxBytes as soon as the lengths are read", () => {
    const decoder = new ParamsDecoder({ maxBytes: 1 << 20 });
    // Name 1 byte, value 0x7fffffff bytes: must fail now, without allocating 2 GiB.
    expect(() => decoder.push(hex("01 ff ff ff ff 41"))).toThrow(
      /exceeds the 1048576-byte params limit/,
    );
  });

  it("tells params too large (ParamsTooLargeError) from malformed ones (a plain FastCgiProtocolError) by type", () => {
    const overLimit = new ParamsDecoder({ maxBytes: 100 });
    expect(() => overLimit.push(encodeNameValuePairs([["A", "x".repeat(200)]]))).toThrow(
      ParamsTooLargeError,
    );
    const forged = new ParamsDecoder({ maxBytes: 100 });
    expect(() => forged.push(hex("01 ff ff ff ff 41"))).toThrow(ParamsTooLargeError);
    const truncated = new ParamsDecoder({ maxBytes: 100 });
    truncated.push(hex("05 05 61 62"));
    let error: unknown;
    try {
      truncated.end();
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(FastCgiProtocolError);
    expect(error).not.toBeInstanceOf(ParamsTooLargeError);
  });

  it("through the record parser, reports oversized params as an error", () => {
    const params = encodeNameValuePairs([["HTTP_COOKIE", "c".repeat(5000)]]);
    const stream = Buffer.concat([
      encodeRecord(RecordType.PARAMS, 1, params),
      encodeEndOfStream(RecordType.PARAMS, 1),
    ]);
    expect(() => runRequest([stream], 4096)).toThrow(FastCgiProtocolError);
  });
});

describe("record encoders", () => {
  it("frames a 66000-byte STDOUT body as 65535 + 465 byte records with 1 and 7 bytes of padding", () => {
    const body = Buffer.alloc(66000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const expected = Buffer.concat([
      hex("01 06 00 01 ff ff 01 00"),
      body.subarray(0, 65535),
      hex("00"),
      hex("01 06 00 01 01 d1 07 00"),
      body.subarray(65535),
      hex("00 00 00 00 00 00 00"),
    ]);
    const pieces = encodeStream(RecordType.STDOUT, 1, body);
    expectBytes(pieces, expected);
    // Large bodies are framed around views of the body rather than copied.
    expect(pieces.some((piece) => piece.buffer === body.buffer && piece.length === 65535)).toBe(
      true,
    );
    expectBytes(encodeStream(RecordType.STDOUT, 1, new Uint8Array(body)), expected);
  });

  it("pads every output record to a multiple of 8 with zero bytes and round-trips through the parser", () => {
    for (const length of [1, 2, 7, 8, 9, 15, 16, 17, 16384, 16385, 65535, 65536, 140000]) {
      const data = Buffer.alloc(length, 0xab);
      const pieces = encodeStream(RecordType.STDERR, 300, data);
      const bytes = Buffer.concat(pieces);
      let expectedLength = 0;
      for (let left = length; left > 0; left -= 65535) {
        const content = Math.min(left, 65535);
        expectedLength += 8 + content + ((8 - (content % 8)) % 8);
      }
      expect(bytes.length).toBe(expectedLength);
      expect(bytes.length % 8).toBe(0);
      const events = parseChunks([bytes]);
      expect(normalize(events)).toEqual([`stream type=7 id=300 ${data.toString("hex")}`]);
      if (length <= 16384) expect(pieces).toHaveLength(1);
    }
    const small = encodeStream(RecordType.STDOUT, 1, Buffer.from("abc"));
    expect(small).toEqual([hex("01 06 00 01 00 03 05 00 61 62 63 00 00 00 00 00")]);
  });

  it("produces no records for empty data, since an empty record would end the stream", () => {
    expect(encodeStream(RecordType.STDOUT, 1, Buffer.alloc(0))).toEqual([]);
  });

  it("encodes end of stream, END_REQUEST and the combined response end", () => {
    expect(encodeEndOfStream(RecordType.STDOUT, 1)).toEqual(hex("01 06 00 01 00 00 00 00"));
    expect(encodeEndRequest(1, 0, ProtocolStatus.REQUEST_COMPLETE)).toEqual(
      hex("01 03 00 01 00 08 00 00 00 00 00 00 00 00 00 00"),
    );
    expect(encodeEndRequest(0x1234, 0x01020304, ProtocolStatus.UNKNOWN_ROLE)).toEqual(
      hex("01 03 12 34 00 08 00 00 01 02 03 04 03 00 00 00"),
    );
    expect(encodeEndRequest(1, -1, ProtocolStatus.OVERLOADED)).toEqual(
      hex("01 03 00 01 00 08 00 00 ff ff ff ff 02 00 00 00"),
    );
    expect(encodeResponseEnd(1)).toEqual(
      Buffer.concat([
        encodeEndOfStream(RecordType.STDOUT, 1),
        encodeEndRequest(1, 0, ProtocolStatus.REQUEST_COMPLETE),
      ]),
    );
  });

  it("encodes a whole response as one padded STDOUT record, the empty STDOUT and END_REQUEST, exactly", () => {
    const head = "Status: 200 OK\r\nX-Caf\u00e9: 1\r\n\r\n"; // Latin-1: one byte per character
    const body = ["\u20ac", new Uint8Array([0x00, 0xff]), ""];
    const content = Buffer.concat([
      Buffer.from(head, "latin1"),
      Buffer.from("\u20ac", "utf8"),
      Buffer.from([0x00, 0xff]),
    ]);
    expect(content.length).toBe(34);
    expect(encodeWholeResponse(0x0102, head, body, content.length)).toEqual(
      Buffer.concat([
        hex("01 06 01 02 00 22 06 00"),
        content,
        hex("00 00 00 00 00 00"),
        hex("01 06 01 02 00 00 00 00"),
        hex("01 03 01 02 00 08 00 00 00 00 00 00 00 00 00 00"),
      ]),
    );
    // 65535 bytes of content is the most one record holds.
    const full = encodeWholeResponse(1, "", [Buffer.alloc(65535, 0x61)], 65535);
    expect(full.subarray(0, 8)).toEqual(hex("01 06 00 01 ff ff 01 00"));
    expect(full.length).toBe(8 + 65535 + 1 + 8 + 16);
    expect(() => encodeWholeResponse(1, "", [Buffer.alloc(65536)], 65536)).toThrow(RangeError);
    // A wrong byte count is refused, never sent as a malformed record.
    expect(() => encodeWholeResponse(1, "", ["\u20ac"], 1)).toThrow(RangeError);
  });

  it("encodes UNKNOWN_TYPE and GET_VALUES_RESULT", () => {
    expect(encodeUnknownType(12)).toEqual(hex("01 0b 00 00 00 08 00 00 0c 00 00 00 00 00 00 00"));
    expect(encodeGetValuesResult([["FCGI_MPXS_CONNS", "1"]])).toEqual(
      Buffer.concat([
        hex("01 0a 00 00 00 12 06 00 0f 01"),
        Buffer.from("FCGI_MPXS_CONNS1"),
        Buffer.alloc(6),
      ]),
    );
  });

  it("encodes record headers and rejects fields that do not fit", () => {
    expect(encodeRecordHeader(RecordType.PARAMS, 0xbeef, 0x1234, 4)).toEqual(
      hex("01 04 be ef 12 34 04 00"),
    );
    expect(() => encodeRecordHeader(RecordType.STDOUT, 1, 65536, 0)).toThrow(RangeError);
    expect(() => encodeRecordHeader(RecordType.STDOUT, 65536, 0, 0)).toThrow(RangeError);
    expect(() => encodeRecordHeader(RecordType.STDOUT, 1, 0, 256)).toThrow(RangeError);
  });

  it("round-trips BEGIN_REQUEST bodies and rejects malformed ones", () => {
    const body = encodeBeginRequest(Role.FILTER, FCGI_KEEP_CONN);
    expect(body).toEqual(hex("00 03 01 00 00 00 00 00"));
    expect(parseBeginRequest(body)).toEqual({ role: Role.FILTER, flags: FCGI_KEEP_CONN });
    expect(parseBeginRequest(hex("01 02 00 00 00 00 00 00"))).toEqual({ role: 0x0102, flags: 0 });
    expect(() => parseBeginRequest(hex("00 01 01"))).toThrow(FastCgiProtocolError);
  });
});
