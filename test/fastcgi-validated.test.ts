// The FastCGI gateway under the validator: requests of every shape served by
// `tsgi fcgi` break no rule of the interface on either side.

import { afterAll, describe, expect, it } from "vitest";
import { paramsFor, trackClients } from "./helpers/fastcgi-client.js";
import { ProcessGroup } from "./helpers/processes.js";
import { fcgiFixture, startTsgiFcgi } from "./helpers/tsgi.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());
const open = trackClients();

describe("tsgi fcgi under the validator", () => {
  it("serves GET, POST with a body, streamed and empty responses on new and kept connections without a violation", async () => {
    const server = await startTsgiFcgi(group, {
      app: fcgiFixture("validated-app.js"),
      listen: "tcp",
    });
    const kept = await open(server.address);
    const body = Buffer.alloc(200_000, "x");
    const requests = [
      { params: paramsFor("/plain") },
      {
        params: paramsFor("/upload", {
          REQUEST_METHOD: "POST",
          CONTENT_LENGTH: String(body.length),
        }),
        stdin: body,
      },
      { params: paramsFor("/upload", { REQUEST_METHOD: "POST" }), stdin: body }, // no CONTENT_LENGTH, as nginx may send
      { params: paramsFor("/stream") },
      { params: paramsFor("/empty") },
    ];
    for (const request of requests) {
      const fresh = await open(server.address);
      expect((await fresh.request(request)).endRequest.protocolStatus).toBe(0);
      expect((await kept.request({ ...request, keepConn: true })).endRequest.protocolStatus).toBe(
        0,
      );
    }
    const check = await open(server.address);
    const report = (await check.request({ params: paramsFor("/violations") }))
      .response()
      .body.toString();
    expect(report).toBe("none");
  });
});
