// Accepted sockets that read into one buffer, reused for every read of every
// such socket in the process, instead of a fresh allocation per read.
//
// node:net reads each chunk into a new buffer of up to 64 KiB (memory outside
// V8's heap, allocated and freed per read) and hands it through the Readable
// machinery (a push, a 'data' event, a tick to read more). node:http does not
// pay this: its parser reads straight from the socket's handle into one
// buffer. For a FastCGI connection, whose records are parsed as they arrive
// and whose few kept bytes (a request body) are copied out, that was about
// 1 µs of the 25 µs a small request cost the process behind nginx.
//
// One buffer serves every socket: libuv reads one socket at a time and the
// 'data' listener runs before the next read, and a listener copies what it
// keeps. A buffer per socket would be 64 KiB of outside memory for each
// connection, which for a web server opening one per request (Apache without
// connection reuse) cost more in collections than the reads saved.
//
// node:net offers this as the `onread` option of a Socket it is given a handle
// for, not of the sockets a net.Server accepts. So the server accepts them
// paused (`pauseOnConnect`, nothing has been read), and each one's handle is
// moved into a Socket made with `onread`; the accepted Socket, left without a
// handle, is destroyed, which also takes it off the server's connection count
// (the gateway counts its connections itself). Reaching the handle uses
// net.Socket's `_handle`, which has no public form: where it is missing (a
// future Node, a socket of another kind), the accepted socket is used as it
// is, reading as before.

import { Socket } from "node:net";

/** The size of the buffer the sockets read into: node:net's own read size. */
const READ_BUFFER_BYTES = 64 * 1024;

/** Made at the first socket moved to it. */
let sharedBuffer: Buffer | undefined;

interface HandleHolder {
  _handle?: object | null;
}

/**
 * A socket for `accepted` (accepted paused) whose 'data' chunks are views into
 * one buffer reused for every read: each chunk is valid only during its
 * 'data' event, and a listener copies what it keeps. Falls back to `accepted`
 * itself, resumed.
 */
export function withReusedReadBuffer(accepted: Socket): Socket {
  const holder = accepted as unknown as HandleHolder;
  const handle = holder._handle;
  if (typeof handle !== "object" || handle === null) return accepted.resume();
  const buffer = (sharedBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES));
  const socket: Socket = new Socket({
    handle,
    allowHalfOpen: accepted.allowHalfOpen,
    readable: true,
    writable: true,
    onread: {
      buffer,
      callback: (bytes: number): void => {
        socket.emit("data", buffer.subarray(0, bytes));
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  holder._handle = null;
  accepted.destroy();
  return socket;
}
