// The socket under the request and response objects that fromNodeHandler
// gives a Node-style application: no connection, only what code reads from a
// socket (peer address, TLS flag, readable/writable/destroyed) and the events
// and methods it calls.
//
// An EventEmitter rather than a net.Socket or a Duplex: node:http has one
// socket per connection, this is one per request, and a stream's state
// machinery would be work node:http does not do. Node's own code handles it as
// a legacy stream (an emitter with write()), as it does for any socket-like object.

import { EventEmitter } from "node:events";

export interface Peer {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
  encrypted: boolean;
}

/** Told when the socket is destroyed, after its 'error' and 'close' events. */
export interface SocketOwner {
  socketDestroyed(error: Error | undefined): void;
}

/** node:http's and net.Socket's default buffer size for a connection. */
const HIGH_WATER_MARK = 16 * 1024;

/**
 * Readable and writable while the request lasts (on-finished and finalhandler
 * take a closed socket as a finished request); destroying it is how the
 * application, or the bridge on its behalf, ends the exchange.
 */
export class BridgeSocket extends EventEmitter {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** Present only on TLS, as on a real socket: Express and Koa test it for truthiness. */
  readonly encrypted?: true;
  readable = true;
  writable = true;
  destroyed = false;
  readonly connecting = false;
  readonly writableLength = 0;
  readonly writableCorked = 0;
  readonly writableHighWaterMark = HIGH_WATER_MARK;
  readonly readableHighWaterMark = HIGH_WATER_MARK;
  owner: SocketOwner | undefined;

  constructor(peer: Peer) {
    super();
    this.remoteAddress = peer.remoteAddress;
    this.remotePort = peer.remotePort;
    this.localAddress = peer.localAddress;
    this.localPort = peer.localPort;
    if (peer.encrypted) this.encrypted = true;
  }

  get remoteFamily(): string | undefined {
    const address = this.remoteAddress;
    return address === undefined ? undefined : address.includes(":") ? "IPv6" : "IPv4";
  }

  /** Ends the exchange: 'error' (if given and someone listens), then 'close', on the next tick as a socket does. */
  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    process.nextTick(emitDestroyed, this, error);
    return this;
  }

  /** A socket's end() closes its side of the connection: here, the exchange. */
  end(): this {
    return this.destroy();
  }

  /** Only node:http's own extras (an interim "100 Continue") get here: the response goes through the engine. */
  write(_chunk: unknown, encoding?: unknown, callback?: () => void): boolean {
    const done = typeof encoding === "function" ? (encoding as () => void) : callback;
    if (done) process.nextTick(done);
    return !this.destroyed;
  }

  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (this.localAddress === undefined) return {};
    return {
      address: this.localAddress,
      family: this.localAddress.includes(":") ? "IPv6" : "IPv4",
      port: this.localPort ?? 0,
    };
  }

  // Flow and connection tuning (pause(), setTimeout(ms, callback), setNoDelay(on), …) that has
  // nothing to act on here: the arguments are ignored.
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

function emitDestroyed(socket: BridgeSocket, error: Error | undefined): void {
  // A real socket's unheard 'error' would end the process; node:http's server always listens.
  if (error && socket.listenerCount("error") > 0) socket.emit("error", error);
  socket.emit("close", error !== undefined);
  socket.owner?.socketDestroyed(error);
}
