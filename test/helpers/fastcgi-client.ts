// A FastCGI client for the tests: plays the web server's side of the protocol
// over TCP or a unix socket, from raw bytes up to whole requests.
// Records are encoded with src/fastcgi/records.ts and parsed with its RecordParser.

import { connect, type Socket } from "node:net";
import { afterEach } from "vitest";
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONTENT_LENGTH,
  RecordType,
  Role,
  encodeNameValuePairs,
} from "../../src/fastcgi/protocol.js";
import {
  RecordParser,
  encodeBeginRequest,
  encodeEndOfStream,
  encodeRecord,
  encodeRecordHeader,
  encodeStream,
  paddingFor,
} from "../../src/fastcgi/records.js";
import { parseCgiResponse, type ParsedResponse } from "./cgi.js";

/** Where a FastCGI server listens: a unix socket path, or TCP. */
export type FastCgiAddress = { path: string } | { host: string; port: number };

/** One thing received: a whole non-stream record, or the content of a stream (consecutive pieces merged; empty = end of stream). */
export interface ClientRecord {
  readonly type: number;
  readonly requestId: number;
  readonly content: Buffer;
}

export interface EndRequest {
  appStatus: number;
  protocolStatus: number;
}

export interface FastCgiResponse {
  stdout: Buffer;
  stderr: Buffer;
  endRequest: EndRequest;
  /** Everything received for this request id, in order. */
  records: ClientRecord[];
  /** Whether an empty STDOUT / STDERR record ended those streams before END_REQUEST. */
  stdoutEnded: boolean;
  stderrEnded: boolean;
  /** stdout parsed as a CGI response (throws when it is not one). */
  response(): ParsedResponse;
}

/** Record header fields as found on the wire, for tests of framing and padding. */
export interface RawFrame {
  version: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
  /** Offset of the header in the byte stream. */
  offset: number;
}

export type Params = Record<string, string> | readonly (readonly [string, string])[];

export interface RequestOptions {
  params?: Params;
  /** The body. Sent in records of at most 65535 bytes, then the empty STDIN record (unless `endStdin: false`). */
  stdin?: Buffer | string;
  /** Leave out the empty STDIN record that ends the body. Default: sent (except for the Authorizer role). */
  endStdin?: boolean;
  /** FCGI_DATA for the Filter role (then ended with an empty DATA record). */
  data?: Buffer | string;
  keepConn?: boolean;
  requestId?: number;
  role?: number;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** Same request environment for every test: what nginx's fastcgi_params would send for `GET /`. */
export const BASE_PARAMS: Readonly<Record<string, string>> = {
  GATEWAY_INTERFACE: "CGI/1.1",
  REQUEST_METHOD: "GET",
  SCRIPT_NAME: "",
  PATH_INFO: "/",
  QUERY_STRING: "",
  REQUEST_URI: "/",
  SERVER_NAME: "localhost",
  SERVER_PORT: "80",
  SERVER_PROTOCOL: "HTTP/1.1",
  SERVER_SOFTWARE: "tsgi-tests",
  REMOTE_ADDR: "127.0.0.1",
};

/** Params for a request to `path` (PATH_INFO, with an optional `?query`), over BASE_PARAMS. */
export function paramsFor(
  target: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const [path, query = ""] = target.split("?", 2) as [string, string?];
  return { ...BASE_PARAMS, PATH_INFO: path, QUERY_STRING: query, REQUEST_URI: target, ...extra };
}

/** Stream content gathered piece by piece and joined only when read (large responses stay linear). */
class StreamRecord implements ClientRecord {
  private pieces: Buffer[];
  length: number;

  constructor(
    readonly type: number,
    readonly requestId: number,
    first: Buffer,
  ) {
    this.pieces = [first]; // views of socket chunks, which Node never reuses
    this.length = first.length;
  }

  add(piece: Buffer): void {
    this.pieces.push(piece);
    this.length += piece.length;
  }

  get content(): Buffer {
    if (this.pieces.length !== 1) this.pieces = [Buffer.concat(this.pieces, this.length)];
    return this.pieces[0];
  }
}

export class FastCgiClient {
  readonly socket: Socket;
  /** Everything received, in order. */
  readonly records: ClientRecord[] = [];
  /** Every byte received (unless created with keepRaw: false). */
  private readonly raw: Buffer[] = [];
  private readonly keepRaw: boolean;
  private readonly parser: RecordParser;
  private readonly listeners = new Set<() => void>();
  private closedFlag = false;
  private protocolError: Error | undefined;
  /** Bytes received, including those not kept. */
  receivedBytes = 0;

  private constructor(socket: Socket, keepRaw: boolean) {
    this.socket = socket;
    this.keepRaw = keepRaw;
    this.parser = new RecordParser({
      onRecord: (type, requestId, content) => {
        this.records.push({ type, requestId, content: Buffer.from(content) });
      },
      onStreamData: (type, requestId, data) => {
        const last = this.records[this.records.length - 1];
        if (
          data.length !== 0 &&
          last instanceof StreamRecord &&
          last.type === type &&
          last.requestId === requestId &&
          last.length !== 0
        ) {
          last.add(data);
        } else {
          this.records.push(new StreamRecord(type, requestId, data));
        }
      },
      onError: (error) => {
        this.protocolError = error;
      },
    });
    socket.on("data", (chunk: Buffer) => {
      this.receivedBytes += chunk.length;
      if (this.keepRaw) this.raw.push(chunk);
      this.parser.push(chunk);
      this.notify();
    });
    // ECONNRESET and EPIPE are outcomes some tests expect; "close" follows.
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closedFlag = true;
      this.notify();
    });
  }

  /** Connects to a FastCGI server. `localAddress` binds the client side (e.g. 127.0.0.2 on Linux loopback). */
  static connect(
    address: FastCgiAddress,
    options: {
      timeoutMs?: number;
      localAddress?: string;
      keepRaw?: boolean;
      allowHalfOpen?: boolean;
    } = {},
  ): Promise<FastCgiClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // allowHalfOpen: keep sending after the server's FIN, as a web server may (Node ends its side by default).
    const allowHalfOpen = options.allowHalfOpen ?? false;
    return new Promise((resolve, reject) => {
      const socket =
        "path" in address
          ? connect({ path: address.path, allowHalfOpen })
          : connect({
              host: address.host,
              port: address.port,
              localAddress: options.localAddress,
              allowHalfOpen,
            });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new Error(`could not connect to ${describeAddress(address)} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new FastCgiClient(socket, options.keepRaw ?? true));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** All bytes received so far. */
  rawBytes(): Buffer {
    return Buffer.concat(this.raw);
  }

  /** Records received for one request id. */
  recordsFor(requestId: number): ClientRecord[] {
    return this.records.filter((record) => record.requestId === requestId);
  }

  // Sending

  /** Writes bytes as they are; resolves once the socket took them (waits for "drain" under backpressure). */
  sendRaw(bytes: Uint8Array): Promise<void> {
    if (this.socket.destroyed) return Promise.reject(new Error("the connection is closed"));
    if (this.socket.write(bytes)) return Promise.resolve();
    return this.waitForDrain();
  }

  /** One record of `type` carrying `content` (which must fit one record). */
  sendRecord(
    type: number,
    requestId: number,
    content: Uint8Array = Buffer.alloc(0),
  ): Promise<void> {
    return this.sendRaw(encodeRecord(type, requestId, content));
  }

  beginRequest(
    requestId: number,
    options: { role?: number; keepConn?: boolean } = {},
  ): Promise<void> {
    const body = encodeBeginRequest(
      options.role ?? Role.RESPONDER,
      options.keepConn ? FCGI_KEEP_CONN : 0,
    );
    return this.sendRecord(RecordType.BEGIN_REQUEST, requestId, body);
  }

  /** The whole FCGI_PARAMS stream (records of at most 65535 bytes) and, unless `end: false`, the empty record that ends it. */
  sendParams(
    requestId: number,
    params: Params | Buffer,
    options: { end?: boolean } = {},
  ): Promise<void> {
    const bytes = Buffer.isBuffer(params)
      ? params
      : encodeNameValuePairs(Array.isArray(params) ? params : Object.entries(params));
    return this.sendStream(RecordType.PARAMS, requestId, bytes, options.end ?? true);
  }

  /** Stream content in records of at most 65535 bytes, then (if `end`) the empty record that ends the stream. */
  async sendStream(type: number, requestId: number, data: Uint8Array, end = true): Promise<void> {
    for (let offset = 0; offset < data.length; offset += 1024 * 1024) {
      const slice = data.subarray(offset, Math.min(data.length, offset + 1024 * 1024));
      for (const piece of encodeStream(type, requestId, slice)) this.socket.write(piece);
      if (this.socket.writableNeedDrain) await this.waitForDrain();
    }
    if (end) await this.sendRaw(encodeEndOfStream(type, requestId));
  }

  /**
   * Streams `totalBytes` of generated body as STDIN without holding it in memory,
   * honouring socket backpressure; `fill(chunk, offset)` writes the bytes at `offset`.
   * Returns how many bytes went out (fewer if the connection closed).
   */
  async streamStdin(
    requestId: number,
    totalBytes: number,
    options: {
      end?: boolean;
      fill?: (chunk: Buffer, offset: number) => void;
      timeoutMs?: number;
    } = {},
  ): Promise<number> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    let sent = 0;
    while (sent < totalBytes) {
      if (this.socket.destroyed) return sent;
      if (Date.now() > deadline)
        throw new Error(`streaming ${totalBytes} bytes of STDIN timed out after ${sent}`);
      const size = Math.min(FCGI_MAX_CONTENT_LENGTH - 7, totalBytes - sent); // a multiple of 8: no padding needed
      const chunk = Buffer.allocUnsafe(size);
      if (options.fill) options.fill(chunk, sent);
      else chunk.fill(sent & 0xff);
      this.socket.write(encodeRecordHeader(RecordType.STDIN, requestId, size, paddingFor(size)));
      this.socket.write(chunk);
      if (paddingFor(size) !== 0) this.socket.write(Buffer.alloc(paddingFor(size)));
      sent += size;
      if (this.socket.writableNeedDrain)
        await this.waitForDrain(Math.max(1, deadline - Date.now()));
    }
    if (options.end ?? true) await this.sendRaw(encodeEndOfStream(RecordType.STDIN, requestId));
    return sent;
  }

  abortRequest(requestId: number): Promise<void> {
    return this.sendRecord(RecordType.ABORT_REQUEST, requestId);
  }

  /** Sends a whole request and waits for its END_REQUEST. */
  async request(options: RequestOptions = {}): Promise<FastCgiResponse> {
    const requestId = options.requestId ?? 1;
    const role = options.role ?? Role.RESPONDER;
    const from = this.records.length;
    await this.beginRequest(requestId, { role, keepConn: options.keepConn ?? false });
    await this.sendParams(requestId, options.params ?? BASE_PARAMS);
    if (role !== Role.AUTHORIZER || options.stdin !== undefined) {
      const stdin =
        typeof options.stdin === "string"
          ? Buffer.from(options.stdin)
          : (options.stdin ?? Buffer.alloc(0));
      await this.sendStream(RecordType.STDIN, requestId, stdin, options.endStdin ?? true);
    }
    if (options.data !== undefined) {
      const data = typeof options.data === "string" ? Buffer.from(options.data) : options.data;
      await this.sendStream(RecordType.DATA, requestId, data, true);
    }
    return this.response(requestId, { from, timeoutMs: options.timeoutMs });
  }

  /** Waits for END_REQUEST on `requestId` and collects what came for it (from record index `from`). */
  async response(
    requestId: number,
    options: { from?: number; timeoutMs?: number | undefined } = {},
  ): Promise<FastCgiResponse> {
    const from = options.from ?? 0;
    const end = await this.waitForEndRequest(requestId, { from, timeoutMs: options.timeoutMs });
    const records = this.records.slice(from).filter((record) => record.requestId === requestId);
    const stdout = Buffer.concat(
      records.filter((record) => record.type === RecordType.STDOUT).map((record) => record.content),
    );
    const stderr = Buffer.concat(
      records.filter((record) => record.type === RecordType.STDERR).map((record) => record.content),
    );
    const endIndex = records.findIndex((record) => record.type === RecordType.END_REQUEST);
    const ended = (type: number) =>
      records
        .slice(0, endIndex)
        .some((record) => record.type === type && record.content.length === 0);
    return {
      stdout,
      stderr,
      endRequest: end,
      records,
      stdoutEnded: ended(RecordType.STDOUT),
      stderrEnded: ended(RecordType.STDERR),
      response: () => parseCgiResponse(stdout),
    };
  }

  // Waiting (every wait is bounded)

  /** Resolves with the records once `predicate(records)` holds; rejects on timeout or when the connection closes first. */
  waitForRecords(
    predicate: (records: ClientRecord[]) => boolean,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<ClientRecord[]> {
    return this.waitFor(
      () => (predicate(this.records) ? this.records : undefined),
      timeoutMs,
      "the awaited records",
      true,
    );
  }

  /** The END_REQUEST of `requestId` (the first one at or after record index `from`). */
  async waitForEndRequest(
    requestId: number,
    options: { from?: number; timeoutMs?: number | undefined } = {},
  ): Promise<EndRequest> {
    const from = options.from ?? 0;
    const find = () =>
      this.records
        .slice(from)
        .find((r) => r.type === RecordType.END_REQUEST && r.requestId === requestId);
    const record = await this.waitFor(
      find,
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      `END_REQUEST for request ${requestId}`,
      true,
    );
    return parseEndRequest(record.content);
  }

  /** Resolves when the server has closed the connection. */
  waitForClose(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    return this.waitFor(
      () => (this.closedFlag ? true : undefined),
      timeoutMs,
      "the connection to close",
      false,
    ).then(() => {});
  }

  /** Everything received once the server closes the connection. */
  async readUntilClose(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    await this.waitForClose(timeoutMs);
    return this.rawBytes();
  }

  /** Resolves when the socket can take more (rejects on close or timeout). */
  private waitForDrain(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.socket.off("drain", onDrain);
        this.socket.off("close", onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new Error("the connection closed while sending"));
      const timer = setTimeout(
        () => done(new Error(`the server did not read for ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.socket.on("drain", onDrain);
      this.socket.on("close", onClose);
    });
  }

  private waitFor<T>(
    check: () => T | undefined,
    timeoutMs: number,
    what: string,
    failOnClose: boolean,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const listener = () => {
        const found = check();
        if (found !== undefined) finish(undefined, found);
        else if (failOnClose && this.closedFlag) {
          finish(
            new Error(
              `the connection closed before ${what}${this.protocolError ? ` (${this.protocolError.message})` : ""}; got: ${this.summary()}`,
            ),
          );
        }
      };
      const finish = (error: Error | undefined, value?: T) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (error) reject(error);
        else resolve(value as T);
      };
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}; got: ${this.summary()}`,
            ),
          ),
        timeoutMs,
      );
      this.listeners.add(listener);
      listener();
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** The records so far, one short line each, for failure messages. */
  summary(): string {
    const names = Object.fromEntries(
      Object.entries(RecordType).map(([name, value]) => [value, name]),
    );
    const lines = this.records.map(
      (r) =>
        `${names[r.type] ?? `type ${r.type}`}#${r.requestId}(${r instanceof StreamRecord ? r.length : r.content.length})`,
    );
    return `[${lines.join(", ")}]${this.closedFlag ? " closed" : ""}`;
  }

  /** Closes our side for writing (the server sees end of stream). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function parseEndRequest(content: Buffer): EndRequest {
  if (content.length !== 8)
    throw new Error(`END_REQUEST body must be 8 bytes, got ${content.length}`);
  return { appStatus: content.readUInt32BE(0), protocolStatus: content[4] };
}

/**
 * Splits a byte stream into record headers without interpreting content:
 * an oracle for framing and padding independent of the parser under test.
 */
export function splitFrames(bytes: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    const frame: RawFrame = {
      version: bytes[offset],
      type: bytes[offset + 1],
      requestId: bytes.readUInt16BE(offset + 2),
      contentLength: bytes.readUInt16BE(offset + 4),
      paddingLength: bytes[offset + 6],
      offset,
    };
    frames.push(frame);
    offset += 8 + frame.contentLength + frame.paddingLength;
  }
  if (offset !== bytes.length)
    throw new Error(`trailing partial record at byte ${offset} of ${bytes.length}`);
  return frames;
}

export function describeAddress(address: FastCgiAddress): string {
  return "path" in address ? address.path : `${address.host}:${address.port}`;
}

/**
 * Returns an `open(address, options)` whose clients are destroyed after each
 * test; call it once at the top of a test file.
 */
export function trackClients(): (
  address: FastCgiAddress,
  options?: Parameters<typeof FastCgiClient.connect>[1],
) => Promise<FastCgiClient> {
  const clients: FastCgiClient[] = [];
  afterEach(() => {
    for (const client of clients.splice(0)) client.destroy();
  });
  return async (address, options = {}) => {
    const client = await FastCgiClient.connect(address, options);
    clients.push(client);
    return client;
  };
}
