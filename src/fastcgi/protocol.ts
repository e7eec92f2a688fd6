// FastCGI 1.0 protocol constants and the name-value pair format used by
// FCGI_PARAMS, FCGI_GET_VALUES and FCGI_GET_VALUES_RESULT (spec sections 3.4 and 8).

/** The only protocol version defined; every record header must carry it. */
export const FCGI_VERSION_1 = 1;
/** Size of every record header in bytes. */
export const FCGI_HEADER_LENGTH = 8;
/** Largest content a single record can carry (16-bit length field). */
export const FCGI_MAX_CONTENT_LENGTH = 65535;
/** Request id reserved for management records (GET_VALUES, UNKNOWN_TYPE). */
export const FCGI_NULL_REQUEST_ID = 0;
/** BEGIN_REQUEST flag: keep the connection open after the request ends. */
export const FCGI_KEEP_CONN = 1;

/** Record types (the `type` byte of a record header). */
export const RecordType = {
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

/** Roles a BEGIN_REQUEST can ask the application to play. */
export const Role = {
  RESPONDER: 1,
  AUTHORIZER: 2,
  FILTER: 3,
} as const;

/** `protocolStatus` values of an END_REQUEST record. */
export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;

type ValueOf<T> = T[keyof T];
export type RecordType = ValueOf<typeof RecordType>;
export type Role = ValueOf<typeof Role>;
export type ProtocolStatus = ValueOf<typeof ProtocolStatus>;

/** Variable names a web server may ask about with GET_VALUES. */
export const GetValuesName = {
  MAX_CONNS: "FCGI_MAX_CONNS",
  MAX_REQS: "FCGI_MAX_REQS",
  MPXS_CONNS: "FCGI_MPXS_CONNS",
} as const;

/** Default cap on the total size of one request's FCGI_PARAMS stream. */
export const DEFAULT_MAX_PARAMS_BYTES = 1024 * 1024;

/** The peer sent bytes that violate the FastCGI wire format. */
export class FastCgiProtocolError extends Error {
  override name = "FastCgiProtocolError";
}

/**
 * A request's FCGI_PARAMS stream is larger than the configured limit (or a
 * length field announces a pair that would make it so): well-formed, but
 * refused, which a gateway answers with 431 rather than 400.
 */
export class ParamsTooLargeError extends FastCgiProtocolError {
  override name = "ParamsTooLargeError";
}

// Any UTF-16 code unit above 0xff (surrogates included) is outside Latin-1.
const NON_LATIN1 = /[\u0100-\uffff]/;

function lengthFieldSize(length: number): number {
  return length < 0x80 ? 1 : 4;
}

function writeLengthField(out: Buffer, pos: number, length: number): number {
  if (length < 0x80) {
    out[pos] = length;
    return pos + 1;
  }
  out.writeUInt32BE((length | 0x80000000) >>> 0, pos);
  return pos + 4;
}

function checkLatin1(text: string): void {
  // Buffer's latin1 encoder silently keeps only the low byte of wider chars,
  // which would send a different name or value than the caller asked for.
  if (NON_LATIN1.test(text)) {
    throw new RangeError(
      `FastCGI names and values must be Latin-1; got ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
}

/**
 * Encodes name-value pairs into one Buffer. Strings are Latin-1: each char
 * (code 0-255) becomes one byte; a wider char throws a RangeError.
 */
export function encodeNameValuePairs(pairs: Iterable<readonly [string, string]>): Buffer {
  const list = Array.isArray(pairs)
    ? (pairs as readonly (readonly [string, string])[])
    : [...pairs];
  let size = 0;
  for (const [name, value] of list) {
    checkLatin1(name);
    checkLatin1(value);
    size +=
      lengthFieldSize(name.length) + lengthFieldSize(value.length) + name.length + value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const [name, value] of list) {
    pos = writeLengthField(out, pos, name.length);
    pos = writeLengthField(out, pos, value.length);
    pos += out.write(name, pos, "latin1");
    pos += out.write(value, pos, "latin1");
  }
  return out;
}

/** Options for {@link ParamsDecoder}. */
export interface ParamsDecoderOptions {
  /** Cap on the total bytes of the stream (length fields included). Default {@link DEFAULT_MAX_PARAMS_BYTES}. */
  maxBytes?: number;
}

/** The position after the length field readLength() read last (a module slot: no allocation per field). */
let afterLength = 0;

/**
 * Reads the length field at `pos`: one byte below 0x80, else four bytes
 * (big-endian, top bit cleared). Returns -1 when the field does not all lie
 * before `end`; otherwise sets {@link afterLength}.
 */
function readLength(bytes: Buffer, pos: number, end: number): number {
  const first = bytes[pos];
  if (first < 0x80) {
    afterLength = pos + 1;
    return first;
  }
  if (pos + 4 > end) return -1;
  afterLength = pos + 4;
  return (
    (first & 0x7f) * 0x1000000 + (bytes[pos + 1] << 16) + (bytes[pos + 2] << 8) + bytes[pos + 3]
  );
}

const READ_NAME_LENGTH = 0;
const READ_VALUE_LENGTH = 1;
const READ_NAME = 2;
const READ_VALUE = 3;

/**
 * Incremental decoder for one FCGI_PARAMS stream. The stream is a single byte
 * sequence cut into records at arbitrary points, so feed it every record's
 * content in order with push(); a pair may straddle any number of chunks.
 *
 * Names and values decode as Latin-1. A repeated name keeps its last value.
 * push() throws ParamsTooLargeError (a FastCgiProtocolError) once the stream
 * exceeds `maxBytes` (or a length field announces a pair that would); end()
 * throws FastCgiProtocolError if the stream stops inside a pair. After an
 * error every later call throws the same error.
 */
export class ParamsDecoder {
  readonly maxBytes: number;
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private failure: FastCgiProtocolError | null = null;
  private bytesSeen = 0;
  private state = READ_NAME_LENGTH;
  // Holds a 4-byte length field that straddles chunks (rare: made when first needed).
  private lengthBytes: Buffer | null = null;
  private lengthFilled = 0;
  private nameLength = 0;
  private valueLength = 0;
  private name = "";
  // Holds a name or value that straddles chunks; sized once from its length
  // field so assembling it is a single copy, never repeated re-buffering.
  private partial: Buffer | null = null;
  private partialFilled = 0;

  constructor(options: ParamsDecoderOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_PARAMS_BYTES;
  }

  /** Feeds the next piece of the stream. Throws ParamsTooLargeError past the size cap. */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    const chunkStart = this.bytesSeen;
    this.bytesSeen += chunk.length;
    if (this.bytesSeen > this.maxBytes)
      this.fail(new ParamsTooLargeError(`FastCGI params exceed the ${this.maxBytes}-byte limit`));
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === READ_NAME_LENGTH && this.lengthFilled === 0) {
        // The common case: the whole pair lies in this chunk.
        const next = this.wholePair(chunk, pos, chunkStart);
        if (next !== -1) {
          pos = next;
          continue;
        }
      }
      pos =
        this.state === READ_NAME_LENGTH || this.state === READ_VALUE_LENGTH
          ? this.lengthField(chunk, pos, chunkStart)
          : this.text(chunk, pos);
    }
  }

  /** Reads (part of) a length field at `pos`; returns the position after what it read. */
  private lengthField(chunk: Buffer, pos: number, chunkStart: number): number {
    const end = chunk.length;
    if (this.lengthFilled === 0) {
      const length = readLength(chunk, pos, end);
      if (length !== -1) {
        this.lengthRead(length, chunkStart + afterLength);
        return afterLength;
      }
    }
    // A 4-byte field straddles chunks: its bytes are gathered, then read as one.
    const bytes = (this.lengthBytes ??= Buffer.allocUnsafe(4));
    const count = Math.min(4 - this.lengthFilled, end - pos);
    chunk.copy(bytes, this.lengthFilled, pos, pos + count);
    this.lengthFilled += count;
    pos += count;
    if (this.lengthFilled < 4) return pos;
    this.lengthFilled = 0;
    this.lengthRead(readLength(bytes, 0, 4), chunkStart + pos);
    return pos;
  }

  /** A name or value length is known; `streamPos` is where its field ends in the whole stream. */
  private lengthRead(length: number, streamPos: number): void {
    if (this.state === READ_NAME_LENGTH) {
      this.nameLength = length;
      this.state = READ_VALUE_LENGTH;
      return;
    }
    this.valueLength = length;
    // Refuse before buffering anything, so a forged length cannot make us allocate it.
    if (streamPos + this.nameLength + length > this.maxBytes) {
      this.fail(
        new ParamsTooLargeError(
          `FastCGI param of ${this.nameLength + length} bytes exceeds the ${this.maxBytes}-byte params limit`,
        ),
      );
    }
    this.startName();
  }

  /** Reads (part of) a name or value at `pos`; returns the position after what it read. */
  private text(chunk: Buffer, pos: number): number {
    const isName = this.state === READ_NAME;
    const fieldLength = isName ? this.nameLength : this.valueLength;
    const available = chunk.length - pos;
    if (this.partial === null && available >= fieldLength) {
      const end = pos + fieldLength;
      this.textRead(isName ? knownName(chunk, pos, end) : chunk.toString("latin1", pos, end));
      return end;
    }
    if (this.partial === null) {
      this.partial = Buffer.allocUnsafe(fieldLength);
      this.partialFilled = 0;
    }
    const partial = this.partial;
    const count = Math.min(fieldLength - this.partialFilled, available);
    chunk.copy(partial, this.partialFilled, pos, pos + count);
    this.partialFilled += count;
    if (this.partialFilled === fieldLength) {
      this.partial = null;
      this.textRead(partial.toString("latin1"));
    }
    return pos + count;
  }

  private textRead(text: string): void {
    if (this.state === READ_NAME) {
      this.name = text;
      this.startValue();
    } else {
      this.store(this.name, text);
      this.state = READ_NAME_LENGTH;
    }
  }

  /** Ends the stream and returns the decoded pairs as an object. Throws if a pair is incomplete. */
  end(): Record<string, string> {
    if (this.failure) throw this.failure;
    if (this.state !== READ_NAME_LENGTH || this.lengthFilled !== 0) {
      this.fail(new FastCgiProtocolError("FastCGI params stream ended inside a name-value pair"));
    }
    return buildParamsObject(this.names, this.values);
  }

  /**
   * Decodes one pair starting at `pos` when all of it is in `chunk` and within
   * the size limit; returns the position after it, or -1 to take the byte-by-byte path.
   */
  private wholePair(chunk: Buffer, pos: number, chunkStart: number): number {
    const end = chunk.length;
    const nameLength = readLength(chunk, pos, end);
    if (nameLength === -1 || afterLength >= end) return -1;
    const valueLength = readLength(chunk, afterLength, end);
    if (valueLength === -1) return -1;
    pos = afterLength;
    const pairEnd = pos + nameLength + valueLength;
    if (pairEnd > end || chunkStart + pairEnd > this.maxBytes) return -1;
    if (nameLength === 0) {
      this.store("", valueLength === 0 ? "" : chunk.toString("latin1", pos, pairEnd));
    } else {
      const name = knownName(chunk, pos, pos + nameLength);
      this.store(
        name,
        valueLength === 0 ? "" : knownValue(lastNameSlot, chunk, pos + nameLength, pairEnd),
      );
    }
    return pairEnd;
  }

  // Zero-length names and values complete as soon as their length is known;
  // waiting for a byte that never comes would leave the pair unfinished.
  private startName(): void {
    if (this.nameLength === 0) {
      this.name = "";
      this.startValue();
    } else {
      this.state = READ_NAME;
    }
  }

  private startValue(): void {
    if (this.valueLength === 0) {
      this.store(this.name, "");
      this.state = READ_NAME_LENGTH;
    } else {
      this.state = READ_VALUE;
    }
  }

  private store(name: string, value: string): void {
    this.names.push(name);
    this.values.push(value);
  }

  private fail(error: FastCgiProtocolError): never {
    this.failure = error;
    this.partial = null;
    throw this.failure;
  }
}

// Every request repeats the same few dozen param names. Reusing the string made
// for a name the last time spares decoding it, and lets V8 reuse the property
// key it already interned when the name became an environ key. The slot comes
// from the length and three of the name's bytes, not a hash of all of them: the
// bytes are compared in full anyway, so a weaker spread only costs a miss now
// and then, while hashing every byte cost as much as the comparison.
const NAME_CACHE_SLOTS = 512;
const NAME_CACHE_BYTES = 64;
const cachedNameBytes = new Uint8Array(NAME_CACHE_SLOTS * NAME_CACHE_BYTES);
const cachedNameLengths = new Int32Array(NAME_CACHE_SLOTS).fill(-1);
const cachedNames = new Array<string>(NAME_CACHE_SLOTS).fill("");

/** The cache slot of the name knownName() returned last (-1 if it is not cached), for knownValue(). */
let lastNameSlot = -1;

/** The name's cache slot (`end > start`): its length, its 6th (or first), middle and last bytes, mixed. */
function nameSlot(chunk: Buffer, start: number, end: number): number {
  const length = end - start;
  const sixth = start + 5 < end ? chunk[start + 5] : chunk[start];
  const mixed =
    length ^ (sixth << 8) ^ (chunk[end - 1] << 16) ^ (chunk[start + (length >> 1)] << 24);
  return Math.imul(mixed, 0x9e3779b1) >>> 23; // the top 9 bits: NAME_CACHE_SLOTS
}

function knownName(chunk: Buffer, start: number, end: number): string {
  const length = end - start;
  const slot = nameSlot(chunk, start, end);
  const base = slot * NAME_CACHE_BYTES;
  lastNameSlot = slot;
  if (cachedNameLengths[slot] === length) {
    let i = 0;
    while (i < length && cachedNameBytes[base + i] === chunk[start + i]) i++;
    if (i === length) return cachedNames[slot];
  }
  const name = chunk.toString("latin1", start, end);
  if (length <= NAME_CACHE_BYTES) {
    for (let i = 0; i < length; i++) cachedNameBytes[base + i] = chunk[start + i]!;
    cachedNameLengths[slot] = length;
    cachedNames[slot] = name;
  } else {
    lastNameSlot = -1;
  }
  return name;
}

// Most values repeat too (GATEWAY_INTERFACE, SERVER_SOFTWARE, REQUEST_METHOD,
// HTTP_HOST, ...): the last short value seen under each name slot is kept, and
// bytes equal to it give back the same string instead of a new one. Equal bytes
// are compared in full, so a slot shared by two names can only miss, never lie.
// knownName and knownValue compare and store the same way on purpose: one helper
// reaching the arrays through an object (a class or a parameter) instead of
// module constants measured about 0.1 µs slower per request's params.
const VALUE_CACHE_BYTES = 64;
const cachedValueBytes = new Uint8Array(NAME_CACHE_SLOTS * VALUE_CACHE_BYTES);
const cachedValueLengths = new Int32Array(NAME_CACHE_SLOTS).fill(-1);
const cachedValues = new Array<string>(NAME_CACHE_SLOTS).fill("");

function knownValue(slot: number, chunk: Buffer, start: number, end: number): string {
  const length = end - start;
  if (slot < 0 || length > VALUE_CACHE_BYTES) return chunk.toString("latin1", start, end);
  const base = slot * VALUE_CACHE_BYTES;
  if (cachedValueLengths[slot] === length) {
    let i = 0;
    while (i < length && cachedValueBytes[base + i] === chunk[start + i]) i++;
    if (i === length) return cachedValues[slot];
  }
  const value = chunk.toString("latin1", start, end);
  for (let i = 0; i < length; i++) cachedValueBytes[base + i] = chunk[start + i]!;
  cachedValueLengths[slot] = length;
  cachedValues[slot] = value;
  return value;
}

// The params become an object with a few dozen keys. Adding them one by one
// through computed keys is slow in V8 (every store is a new-property transition
// through the generic path), and a web server sends the same names in the same
// order request after request. So each sequence of names gets a small compiled
// object literal, reused while the names repeat.
type ParamsShape = { names: string[]; build: (values: string[]) => Record<string, string> };
const MAX_SHAPES = 16;
const MAX_SHAPE_KEYS = 256;
const shapes: ParamsShape[] = [];
/**
 * False once V8 refused to compile a shape (node --disallow-code-generation-from-strings,
 * or a policy doing the same): every later request takes the plain path at once.
 */
let mayCompile = true;

function buildParamsObject(names: string[], values: string[]): Record<string, string> {
  for (let i = 0; i < shapes.length; i++) {
    const shape = shapes[i];
    if (sameNames(shape.names, names)) {
      if (i !== 0) shapes.unshift(shapes.splice(i, 1)[0]);
      return shape.build(values);
    }
  }
  // "__proto__" in a literal would set the prototype; huge or odd sets are not worth compiling.
  if (!mayCompile || names.length > MAX_SHAPE_KEYS || names.includes("__proto__"))
    return assignParams(names, values);
  const build = compileShape(names);
  if (build === undefined) return assignParams(names, values);
  shapes.unshift({ names: names.slice(), build });
  if (shapes.length > MAX_SHAPES) shapes.pop();
  return build(values);
}

/** An object literal builder for this sequence of names, or undefined where code generation is refused. */
function compileShape(names: string[]): ParamsShape["build"] | undefined {
  const literal = names
    .map((name, index) => `${JSON.stringify(name)}: values[${index}]`)
    .join(", ");
  try {
    // The point of this cache is a compiled object literal, which only code generation
    // gives; the names are JSON-quoted, so no input can change what is compiled.
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function("values", `return { ${literal} };`) as ParamsShape["build"];
  } catch {
    // An EvalError: code generation from strings is disallowed in this process. The
    // names are JSON-quoted, so nothing else here can fail to compile.
    mayCompile = false;
    return undefined;
  }
}

function sameNames(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function assignParams(names: string[], values: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    // Assigning "__proto__" would set the object's prototype instead of a key.
    Object.defineProperty(params, names[i], {
      value: values[i],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return params;
}

/** Decodes a complete name-value buffer (e.g. GET_VALUES content) in one call. */
export function decodeNameValuePairs(
  content: Buffer,
  maxBytes = DEFAULT_MAX_PARAMS_BYTES,
): Map<string, string> {
  const decoder = new ParamsDecoder({ maxBytes });
  decoder.push(content);
  return new Map(Object.entries(decoder.end()));
}
