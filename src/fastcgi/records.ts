// FastCGI record framing: an incremental parser for the byte stream a web server
// sends, and encoders for the records an application sends back (spec section 3.3).

import {
  FCGI_HEADER_LENGTH,
  FCGI_MAX_CONTENT_LENGTH,
  FCGI_NULL_REQUEST_ID,
  FCGI_VERSION_1,
  FastCgiProtocolError,
  ProtocolStatus,
  RecordType,
  encodeNameValuePairs,
} from "./protocol.js";

/**
 * Receives what a {@link RecordParser} finds. Every Buffer handed out is a view
 * into a chunk given to push() whenever possible (the parser never copies a
 * record that lies within one chunk, and never writes into a chunk), so it stays
 * valid for as long as the caller leaves those chunks untouched.
 */
export interface RecordHandler {
  /**
   * A complete record of a non-stream type (BEGIN_REQUEST, ABORT_REQUEST,
   * END_REQUEST, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE, or any type
   * number this module does not know), or any record on request id 0 (a
   * management record, whatever its type). Called once per record with its
   * whole content, padding removed; content is copied only if it spanned chunks.
   */
  onRecord(type: number, requestId: number, content: Buffer): void;
  /**
   * Content of a stream record (PARAMS, STDIN, STDOUT, STDERR, DATA), delivered
   * as it arrives and never copied: one record may yield several consecutive
   * pieces, and record boundaries are not reported because a stream is one byte
   * sequence. Pieces of a non-empty record are never empty; a zero-length
   * record yields exactly one empty piece, so `data.length === 0` means the
   * stream has ended.
   */
  onStreamData(type: number, requestId: number, data: Buffer): void;
  /**
   * The stream is not valid FastCGI (a version byte other than 1). Called at
   * most once; the parser has stopped and the connection should be closed.
   */
  onError(error: FastCgiProtocolError): void;
}

const READ_HEADER = 0;
const READ_CONTENT = 1;
const SKIP_PADDING = 2;

const EMPTY = Buffer.alloc(0);

function isStreamType(type: number): boolean {
  return type >= RecordType.PARAMS && type <= RecordType.DATA;
}

/**
 * Incremental parser for a FastCGI byte stream. push() accepts chunks cut at any
 * byte and reports records to a {@link RecordHandler} synchronously, in order.
 * Handlers may call stop(); they must not call push() re-entrantly.
 */
export class RecordParser {
  private readonly handler: RecordHandler;
  private phase = READ_HEADER;
  private stopped = false;
  // Only used when a header straddles chunks; otherwise fields are read in place.
  private readonly header = Buffer.allocUnsafe(FCGI_HEADER_LENGTH);
  private headerFilled = 0;
  private type = 0;
  private requestId = 0;
  private streamRecord = false;
  private contentLeft = 0;
  private paddingLeft = 0;
  private assembly: Buffer | null = null;
  private assemblyFilled = 0;

  constructor(handler: RecordHandler) {
    this.handler = handler;
  }

  /** True once stop() was called or an error was reported; later pushes are ignored. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Stops parsing, including the rest of the chunk being parsed when called from a handler. */
  stop(): void {
    this.stopped = true;
    this.assembly = null;
  }

  /** Parses the next chunk of the stream. */
  push(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end && !this.stopped) {
      if (this.phase === READ_HEADER) pos = this.readHeader(chunk, pos);
      else if (this.phase === READ_CONTENT) pos = this.readContent(chunk, pos);
      else pos = this.skipPadding(chunk, pos);
    }
  }

  /** Each read* method takes what it can from `chunk` at `pos` and returns the position after it. */
  private readHeader(chunk: Buffer, pos: number): number {
    if (this.headerFilled === 0 && chunk.length - pos >= FCGI_HEADER_LENGTH) {
      this.startRecord(chunk, pos);
      return pos + FCGI_HEADER_LENGTH;
    }
    const count = Math.min(FCGI_HEADER_LENGTH - this.headerFilled, chunk.length - pos);
    chunk.copy(this.header, this.headerFilled, pos, pos + count);
    this.headerFilled += count;
    if (this.headerFilled === FCGI_HEADER_LENGTH) {
      this.headerFilled = 0;
      this.startRecord(this.header, 0);
    }
    return pos + count;
  }

  private readContent(chunk: Buffer, pos: number): number {
    const available = chunk.length - pos;
    if (this.streamRecord) {
      // Stream content is handed on as it arrives, in place.
      const count = Math.min(this.contentLeft, available);
      this.contentLeft -= count;
      if (this.contentLeft === 0) this.finishContent();
      this.handler.onStreamData(this.type, this.requestId, chunk.subarray(pos, pos + count));
      return pos + count;
    }
    if (this.assembly === null && available >= this.contentLeft) {
      const contentEnd = pos + this.contentLeft;
      this.contentLeft = 0;
      this.finishContent();
      this.handler.onRecord(this.type, this.requestId, chunk.subarray(pos, contentEnd));
      return contentEnd;
    }
    return this.assembleContent(chunk, pos);
  }

  /** Non-stream records are at most 64 KiB and consumers want them whole: one that straddles chunks is gathered. */
  private assembleContent(chunk: Buffer, pos: number): number {
    if (this.assembly === null) {
      this.assembly = Buffer.allocUnsafe(this.contentLeft);
      this.assemblyFilled = 0;
    }
    const assembly = this.assembly;
    const count = Math.min(this.contentLeft, chunk.length - pos);
    chunk.copy(assembly, this.assemblyFilled, pos, pos + count);
    this.assemblyFilled += count;
    this.contentLeft -= count;
    if (this.contentLeft === 0) {
      this.assembly = null;
      this.finishContent();
      this.handler.onRecord(this.type, this.requestId, assembly);
    }
    return pos + count;
  }

  private skipPadding(chunk: Buffer, pos: number): number {
    const count = Math.min(this.paddingLeft, chunk.length - pos);
    this.paddingLeft -= count;
    if (this.paddingLeft === 0) this.phase = READ_HEADER;
    return pos + count;
  }

  private startRecord(bytes: Buffer, at: number): void {
    const version = bytes[at];
    if (version !== FCGI_VERSION_1) {
      this.stop();
      this.handler.onError(
        new FastCgiProtocolError(
          `Unsupported FastCGI record version ${version} (expected ${FCGI_VERSION_1}); the peer is not speaking FastCGI 1.0`,
        ),
      );
      return;
    }
    this.type = bytes[at + 1];
    this.requestId = (bytes[at + 2] << 8) | bytes[at + 3];
    this.contentLeft = (bytes[at + 4] << 8) | bytes[at + 5];
    this.paddingLeft = bytes[at + 6];
    // On id 0 every record is a management record, answered once per record
    // (FCGI_UNKNOWN_TYPE for a stream type), so it is delivered whole.
    this.streamRecord = this.requestId !== 0 && isStreamType(this.type);
    if (this.contentLeft !== 0) {
      this.phase = READ_CONTENT;
      return;
    }
    // Deliver now: an empty stream record ends its stream even if no further byte arrives.
    this.finishContent();
    if (this.streamRecord) this.handler.onStreamData(this.type, this.requestId, EMPTY);
    else this.handler.onRecord(this.type, this.requestId, EMPTY);
  }

  private finishContent(): void {
    this.phase = this.paddingLeft === 0 ? READ_HEADER : SKIP_PADDING;
  }
}

/** Padding that rounds a record's content up to a multiple of 8 bytes, as the spec recommends. */
export function paddingFor(contentLength: number): number {
  return (8 - (contentLength & 7)) & 7;
}

function writeHeader(
  out: Buffer,
  pos: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): void {
  out[pos] = FCGI_VERSION_1;
  out[pos + 1] = type;
  out[pos + 2] = requestId >>> 8;
  out[pos + 3] = requestId & 0xff;
  out[pos + 4] = contentLength >>> 8;
  out[pos + 5] = contentLength & 0xff;
  out[pos + 6] = paddingLength;
  out[pos + 7] = 0;
}

function checkRecordFields(
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): void {
  if (
    !(type >= 0 && type <= 0xff) ||
    !(requestId >= 0 && requestId <= 0xffff) ||
    !(contentLength >= 0 && contentLength <= FCGI_MAX_CONTENT_LENGTH) ||
    !(paddingLength >= 0 && paddingLength <= 0xff)
  ) {
    throw new RangeError(
      `Invalid FastCGI record header fields: type ${type}, request id ${requestId}, content ${contentLength}, padding ${paddingLength}`,
    );
  }
}

/** The 8-byte header of a record. */
export function encodeRecordHeader(
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): Buffer {
  checkRecordFields(type, requestId, contentLength, paddingLength);
  const header = Buffer.allocUnsafe(FCGI_HEADER_LENGTH);
  writeHeader(header, 0, type, requestId, contentLength, paddingLength);
  return header;
}

/** One whole record (header, content, zero padding) in a single Buffer; content must fit one record. */
export function encodeRecord(
  type: number,
  requestId: number,
  content: Uint8Array,
  paddingLength: number = paddingFor(content.length),
): Buffer {
  checkRecordFields(type, requestId, content.length, paddingLength);
  const contentEnd = FCGI_HEADER_LENGTH + content.length;
  const record = Buffer.allocUnsafe(contentEnd + paddingLength);
  writeHeader(record, 0, type, requestId, content.length, paddingLength);
  record.set(content, FCGI_HEADER_LENGTH);
  record.fill(0, contentEnd);
  return record;
}

/** Bodies up to this size are copied into one Buffer; larger ones are framed without copying. */
const COPY_STREAM_LIMIT = 16 * 1024;

/**
 * Frames `data` as records of `type` (records of at most 65535 content bytes,
 * each padded to a multiple of 8). Small data comes back as one Buffer; large
 * data as headers and padding interleaved with views of `data`, which must not
 * be modified until written. Empty data gives no records at all, because an
 * empty record would end the stream (use encodeEndOfStream for that).
 */
export function encodeStream(type: number, requestId: number, data: Uint8Array): Buffer[] {
  const length = data.length;
  if (length === 0) return [];
  if (length <= COPY_STREAM_LIMIT) return [encodeRecord(type, requestId, data)];
  checkRecordFields(type, requestId, 0, 0);
  const source = Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const pieces: Buffer[] = [];
  let pendingPadding = 0;
  for (let offset = 0; offset < length; offset += FCGI_MAX_CONTENT_LENGTH) {
    const contentLength = Math.min(FCGI_MAX_CONTENT_LENGTH, length - offset);
    // The previous record's padding shares a buffer with this record's header.
    const gap = Buffer.allocUnsafe(pendingPadding + FCGI_HEADER_LENGTH);
    gap.fill(0, 0, pendingPadding);
    writeHeader(gap, pendingPadding, type, requestId, contentLength, paddingFor(contentLength));
    pieces.push(gap, source.subarray(offset, offset + contentLength));
    pendingPadding = paddingFor(contentLength);
  }
  if (pendingPadding !== 0) pieces.push(Buffer.alloc(pendingPadding));
  return pieces;
}

/** The empty record that ends a stream (8 bytes). */
export function encodeEndOfStream(type: number, requestId: number): Buffer {
  return encodeRecordHeader(type, requestId, 0, 0);
}

function writeEndRequest(
  out: Buffer,
  pos: number,
  requestId: number,
  appStatus: number,
  protocolStatus: number,
): void {
  writeHeader(out, pos, RecordType.END_REQUEST, requestId, 8, 0);
  // Exit codes may be negative; the field is an unsigned 32-bit number.
  out.writeUInt32BE(appStatus >>> 0, pos + 8);
  out[pos + 12] = protocolStatus;
  out[pos + 13] = 0;
  out[pos + 14] = 0;
  out[pos + 15] = 0;
}

/** END_REQUEST record (16 bytes): 32-bit big-endian app status, protocol status, 3 reserved bytes. */
export function encodeEndRequest(
  requestId: number,
  appStatus: number,
  protocolStatus: number,
): Buffer {
  checkRecordFields(RecordType.END_REQUEST, requestId, 8, 0);
  const record = Buffer.allocUnsafe(16);
  writeEndRequest(record, 0, requestId, appStatus, protocolStatus);
  return record;
}

/**
 * End of a response in one 24-byte Buffer: the empty STDOUT record followed by
 * END_REQUEST. STDERR, if it was used, must be ended separately.
 */
export function encodeResponseEnd(
  requestId: number,
  appStatus = 0,
  protocolStatus: number = ProtocolStatus.REQUEST_COMPLETE,
): Buffer {
  checkRecordFields(RecordType.STDOUT, requestId, 0, 0);
  const bytes = Buffer.allocUnsafe(FCGI_HEADER_LENGTH + 16);
  writeHeader(bytes, 0, RecordType.STDOUT, requestId, 0, 0);
  writeEndRequest(bytes, FCGI_HEADER_LENGTH, requestId, appStatus, protocolStatus);
  return bytes;
}

/**
 * A whole response in one buffer: an FCGI_STDOUT record holding `head` (the
 * CGI header block, Latin-1) and the body chunks (strings as UTF-8), the empty
 * FCGI_STDOUT that ends the stream, and FCGI_END_REQUEST (request complete).
 * `contentLength` is the byte count of head and body together, at most 65535.
 */
export function encodeWholeResponse(
  requestId: number,
  head: string,
  body: readonly (string | Uint8Array)[],
  contentLength: number,
): Buffer {
  const padding = paddingFor(contentLength);
  checkRecordFields(RecordType.STDOUT, requestId, contentLength, padding);
  const contentEnd = FCGI_HEADER_LENGTH + contentLength;
  const out = Buffer.allocUnsafe(contentEnd + padding + FCGI_HEADER_LENGTH + 16);
  writeHeader(out, 0, RecordType.STDOUT, requestId, contentLength, padding);
  let pos = FCGI_HEADER_LENGTH + out.write(head, FCGI_HEADER_LENGTH, "latin1");
  for (const chunk of body) {
    if (typeof chunk === "string") {
      pos += out.write(chunk, pos, "utf8");
    } else {
      out.set(chunk, pos);
      pos += chunk.length;
    }
  }
  if (pos !== contentEnd)
    throw new RangeError(
      `response content is ${pos - FCGI_HEADER_LENGTH} bytes, not ${contentLength}`,
    );
  for (let i = 0; i < padding; i++) out[pos++] = 0;
  writeHeader(out, pos, RecordType.STDOUT, requestId, 0, 0);
  writeEndRequest(out, pos + FCGI_HEADER_LENGTH, requestId, 0, ProtocolStatus.REQUEST_COMPLETE);
  return out;
}

/** UNKNOWN_TYPE management record (16 bytes) answering a record of an unknown `type`. */
export function encodeUnknownType(type: number): Buffer {
  const record = Buffer.alloc(16);
  writeHeader(record, 0, RecordType.UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, 8, 0);
  record[8] = type;
  return record;
}

/** GET_VALUES_RESULT management record carrying `pairs`, padded to a multiple of 8. */
export function encodeGetValuesResult(pairs: Iterable<readonly [string, string]>): Buffer {
  return encodeRecord(
    RecordType.GET_VALUES_RESULT,
    FCGI_NULL_REQUEST_ID,
    encodeNameValuePairs(pairs),
  );
}

/** Fields of a BEGIN_REQUEST body. */
export interface BeginRequest {
  role: number;
  flags: number;
}

/** Reads a BEGIN_REQUEST body (8 bytes: 16-bit role, flags, 5 reserved). */
export function parseBeginRequest(content: Uint8Array): BeginRequest {
  if (content.length !== 8) {
    throw new FastCgiProtocolError(
      `FastCGI BEGIN_REQUEST body must be 8 bytes, got ${content.length}`,
    );
  }
  return { role: (content[0] << 8) | content[1], flags: content[2] };
}

/** The 8-byte BEGIN_REQUEST body for `role` and `flags` (for clients and tests). */
export function encodeBeginRequest(role: number, flags: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = role >>> 8;
  body[1] = role & 0xff;
  body[2] = flags;
  return body;
}
