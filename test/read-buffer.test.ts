// withReusedReadBuffer (src/server/read-buffer.ts): accepted sockets moved to
// Sockets that read into one reused buffer, over real TCP connections.

import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { withReusedReadBuffer } from "../src/server/read-buffer.js";
import { sleep } from "./helpers/processes.js";

let server: Server | undefined;
const sockets: Socket[] = [];
const accepted: Socket[] = [];
afterEach(async () => {
  for (const socket of [...sockets.splice(0), ...accepted.splice(0)]) socket.destroy();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A server whose sockets are accepted paused and handed to `accepted`; one client connected to it. */
async function pair(onAccept: (socket: Socket) => void): Promise<Socket> {
  server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    accepted.push(socket);
    onAccept(socket);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return another();
}

/** One more client connected to the server. */
async function another(): Promise<Socket> {
  const { port } = server!.address() as AddressInfo;
  const client = connect(port, "127.0.0.1");
  sockets.push(client);
  await new Promise((resolve) => client.once("connect", resolve));
  return client;
}

/** Writes `pieces` one at a time, each after the last was read, so each is its own read. */
async function sendApart(client: Socket, pieces: string[], received: () => number): Promise<void> {
  let expected = 0;
  for (const piece of pieces) {
    client.write(piece);
    expected += piece.length;
    for (let i = 0; i < 200 && received() < expected; i++) await sleep(5);
  }
}

describe("withReusedReadBuffer", () => {
  it("hands every read as a view into the same buffer, in order, and the socket writes and half-closes as usual", async () => {
    const views: { text: string; buffer: ArrayBufferLike; offset: number }[] = [];
    let ended = false;
    let serverSide: Socket | undefined;
    const client = await pair((accepted) => {
      const socket = withReusedReadBuffer(accepted);
      serverSide = socket;
      sockets.push(socket);
      socket.on("data", (chunk: Buffer) => {
        views.push({ text: chunk.toString(), buffer: chunk.buffer, offset: chunk.byteOffset });
      });
      socket.on("end", () => {
        ended = true;
        socket.end("bye"); // allowHalfOpen: still writable after the peer's FIN
      });
    });
    const count = () => views.reduce((sum, view) => sum + view.text.length, 0);
    await sendApart(client, ["first", "second", "third"], count);
    expect(views.map((view) => view.text)).toEqual(["first", "second", "third"]);
    expect(new Set(views.map((view) => view.buffer)).size).toBe(1);
    expect(views.every((view) => view.offset === views[0].offset)).toBe(true);
    expect(serverSide).not.toBe(undefined);

    const reply: Buffer[] = [];
    client.on("data", (chunk: Buffer) => reply.push(chunk));
    const closed = new Promise((resolve) => client.once("close", resolve));
    client.end();
    await closed;
    expect(ended).toBe(true);
    expect(Buffer.concat(reply).toString()).toBe("bye");
  });

  it("serves every socket from the same buffer, each its own bytes, when their reads alternate", async () => {
    const received = new Map<Socket, string>();
    const buffers = new Set<ArrayBufferLike>();
    const first = await pair((accepted) => {
      const socket = withReusedReadBuffer(accepted);
      sockets.push(socket);
      received.set(socket, "");
      socket.on("data", (chunk: Buffer) => {
        buffers.add(chunk.buffer);
        received.set(socket, received.get(socket)! + chunk.toString());
      });
    });
    const second = await another();
    const total = () => [...received.values()].join("").length;
    let sent = 0;
    for (let i = 0; i < 5; i++) {
      for (const [client, text] of [
        [first, `a${i}`],
        [second, `bb${i}`],
      ] as const) {
        client.write(text);
        sent += text.length;
        for (let wait = 0; wait < 200 && total() < sent; wait++) await sleep(5);
      }
    }
    expect([...received.values()].sort()).toEqual(["a0a1a2a3a4", "bb0bb1bb2bb3bb4"]);
    expect(buffers.size).toBe(1);
  });

  it("pause() stops reading and resume() goes on where it stopped: nothing lost", async () => {
    let socket: Socket | undefined;
    let received = "";
    const client = await pair((accepted) => {
      socket = withReusedReadBuffer(accepted);
      sockets.push(socket);
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString();
      });
    });
    await sendApart(client, ["one"], () => received.length);
    socket!.pause();
    client.write("two");
    await sleep(100);
    expect(received).toBe("one");
    socket!.resume();
    for (let i = 0; i < 100 && received.length < 6; i++) await sleep(5);
    expect(received).toBe("onetwo");
  });

  it("moves the connection off the accepted socket: that one is destroyed and the server counts no connection for it", async () => {
    let first: Socket | undefined;
    await pair((socket) => {
      first = socket;
      sockets.push(withReusedReadBuffer(socket));
    });
    await sleep(50);
    expect(first!.destroyed).toBe(true);
    const count = await new Promise<number>((resolve, reject) =>
      server!.getConnections((error, n) => (error ? reject(error) : resolve(n))),
    );
    expect(count).toBe(0);
  });

  it("falls back to the accepted socket itself, resumed, where it has no handle to move", async () => {
    let received = "";
    const client = await pair((accepted) => {
      const handle = (accepted as unknown as { _handle: unknown })._handle;
      // A socket of another kind: the handle is out of reach.
      Object.defineProperty(accepted, "_handle", { value: undefined, configurable: true });
      const socket = withReusedReadBuffer(accepted);
      expect(socket).toBe(accepted);
      Object.defineProperty(accepted, "_handle", {
        value: handle,
        writable: true,
        configurable: true,
      });
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString();
      });
    });
    await sendApart(client, ["still read"], () => received.length);
    expect(received).toBe("still read");
  });
});
