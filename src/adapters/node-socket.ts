// The socket under the request and response objects that fromNodeHandler
// gives a Node-style application: no connection, only what code reads from a
// socket (peer address, TLS flag) and the events and methods it calls.

import { Duplex } from "node:stream";

export interface Peer {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
  encrypted: boolean;
}

/**
 * Readable and writable while the request lasts (on-finished and finalhandler
 * take a closed socket as a finished request); destroying it is how the
 * application, or the bridge on its behalf, ends the exchange.
 */
export class BridgeSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** Present only on TLS, as on a real socket: Express and Koa test it for truthiness. */
  readonly encrypted?: true;

  constructor(peer: Peer) {
    super();
    this.remoteAddress = peer.remoteAddress;
    this.remotePort = peer.remotePort;
    this.remoteFamily =
      peer.remoteAddress === undefined
        ? undefined
        : peer.remoteAddress.includes(":")
          ? "IPv6"
          : "IPv4";
    this.localAddress = peer.localAddress;
    this.localPort = peer.localPort;
    if (peer.encrypted) this.encrypted = true;
  }

  override _read(): void {
    // The request body reaches the IncomingMessage directly, not through the socket.
  }

  override _write(
    _chunk: unknown,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    // Only node:http's own extras (an interim "100 Continue") get here: the response goes through the engine.
    callback();
  }

  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (this.localAddress === undefined) return {};
    return {
      address: this.localAddress,
      family: this.localAddress.includes(":") ? "IPv6" : "IPv4",
      port: this.localPort ?? 0,
    };
  }

  // Connection tuning (setTimeout(ms, callback), setNoDelay(on), setKeepAlive(on, delay)) that has
  // nothing to act on here: the arguments are ignored.
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
