// Real Express and Hono applications (through fromNodeHandler and
// fromFetchHandler) served by one long-lived `tsgi fcgi` process per framework,
// with the same scenarios the CGI run uses (run `npm run build` first).

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FRAMEWORK_APPS, SCENARIOS, gatewayVariables, type Framework } from "./fixtures/http/scenarios.js";
import { FastCgiClient } from "./helpers/fastcgi-client.js";
import { ProcessGroup, startTsgiFcgi, type TsgiFcgi } from "./helpers/servers.js";

const group = new ProcessGroup();
afterAll(() => group.cleanUp());
const clients: FastCgiClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy();
});

for (const framework of Object.keys(FRAMEWORK_APPS) as Framework[]) {
  describe(`${framework} application under \`tsgi fcgi\``, () => {
    let server: TsgiFcgi;
    beforeAll(async () => {
      server = await startTsgiFcgi(group, { app: FRAMEWORK_APPS[framework], listen: "tcp" });
    });

    for (const scenario of SCENARIOS) {
      it(scenario.name, async () => {
        const client = await FastCgiClient.connect(server.address);
        clients.push(client);
        const result = await client.request({
          params: gatewayVariables(scenario.request),
          ...(scenario.request.body ? { stdin: scenario.request.body } : {}),
          timeoutMs: 10_000,
        });
        expect(result.endRequest.protocolStatus).toBe(0);
        const response = result.response();
        scenario.check({ status: response.status, headers: response.headers, body: response.body }, framework);
      });
    }

    it("serves every scenario again on one kept connection, in the same process", async () => {
      const client = await FastCgiClient.connect(server.address);
      clients.push(client);
      for (const scenario of SCENARIOS) {
        const result = await client.request({
          params: gatewayVariables(scenario.request),
          ...(scenario.request.body ? { stdin: scenario.request.body } : {}),
          keepConn: true,
          timeoutMs: 10_000,
        });
        const response = result.response();
        scenario.check({ status: response.status, headers: response.headers, body: response.body }, framework);
      }
      expect(client.closed).toBe(false);
      expect(server.proc.running).toBe(true);
    });
  });
}
