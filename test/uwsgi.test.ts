// uwsgi: the packet parser and the response head byte for byte, then the real
// `tsgi uwsgi` process over raw sockets (run `npm run build` first).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHttpHead } from "../src/headers.js";
import { BadRequest } from "../src/server/request-connection.js";
import { parseUwsgiHead, uwsgiHeadSize } from "../src/uwsgi/protocol.js";
import { ProcessGroup } from "./helpers/processes.js";
import {
  describeGatewayProcess,
  inspect,
  stillServes,
  type GatewayUnderTest,
} from "./helpers/request-gateway-suite.js";
import {
  encodeUwsgiRequest,
  exchange,
  parseHttpResponse,
  uwsgiVars,
  type Vars,
} from "./helpers/scgi-client.js";
import { startTsgiServer, type TsgiFcgi } from "./helpers/tsgi.js";

/** REQUEST_METHOD=GET, PATH_INFO=/a, written out by hand. */
// prettier-ignore
const GET_A = Buffer.from([
  // modifier1 0, size 36 (LE), modifier2 0
  0x00, 0x24, 0x00, 0x00,
  // "REQUEST_METHOD" (14) = "GET" (3)
  0x0e, 0x00, ...Buffer.from("REQUEST_METHOD"), 0x03, 0x00, ...Buffer.from("GET"),
  // "PATH_INFO" (9) = "/a" (2)
  0x09, 0x00, ...Buffer.from("PATH_INFO"), 0x02, 0x00, ...Buffer.from("/a"),
]);

function packet(modifier1: number, vars: Vars): Buffer {
  return encodeUwsgiRequest(vars, undefined, modifier1);
}

describe("uwsgi packet heads", () => {
  it("the size is 4 + the vars size, once the 4-byte header is in", () => {
    expect(uwsgiHeadSize(GET_A.subarray(0, 3))).toBeUndefined();
    expect(uwsgiHeadSize(GET_A.subarray(0, 4))).toBe(GET_A.length);
    expect(uwsgiHeadSize(Buffer.from([0, 0xff, 0xff, 0]))).toBe(4 + 65535);
  });

  it("parses hand-written bytes, and the test client writes the same bytes", () => {
    expect(parseUwsgiHead(GET_A)).toEqual({ REQUEST_METHOD: "GET", PATH_INFO: "/a" });
    expect(
      packet(0, [
        ["REQUEST_METHOD", "GET"],
        ["PATH_INFO", "/a"],
      ]),
    ).toEqual(GET_A);
  });

  const table: [string, number, Vars, Record<string, string>][] = [
    ["no vars", 0, [], {}],
    ["an empty value", 0, [["A", ""]], { A: "" }],
    [
      "a var sent twice: the last value counts",
      0,
      [
        ["PATH_INFO", "/x"],
        ["PATH_INFO", "/y"],
      ],
      { PATH_INFO: "/y" },
    ],
    ["Latin-1 bytes", 0, [["X", "\xe9\xff"]], { X: "\xe9\xff" }],
    [
      "modifier1 30 strips SCRIPT_NAME from the front of PATH_INFO",
      30,
      [
        ["SCRIPT_NAME", "/app"],
        ["PATH_INFO", "/app/page"],
      ],
      { SCRIPT_NAME: "/app", PATH_INFO: "/page" },
    ],
    [
      "modifier1 30 leaves a PATH_INFO without that prefix",
      30,
      [
        ["SCRIPT_NAME", "/app"],
        ["PATH_INFO", "/other"],
      ],
      { SCRIPT_NAME: "/app", PATH_INFO: "/other" },
    ],
    [
      "modifier1 0 leaves PATH_INFO whole",
      0,
      [
        ["SCRIPT_NAME", "/app"],
        ["PATH_INFO", "/app/page"],
      ],
      { SCRIPT_NAME: "/app", PATH_INFO: "/app/page" },
    ],
  ];
  it.each(table)("%s", (_name, modifier1, vars, expected) => {
    expect(parseUwsgiHead(packet(modifier1, vars))).toEqual(expected);
  });

  const bad: [string, Buffer, string, RegExp][] = [
    ["modifier1 5", packet(5, [["A", "1"]]), "501 Not Implemented", /modifier1 5 is not supported/],
    [
      "a value length that runs past the block",
      Buffer.from([0, 6, 0, 0, 1, 0, 0x41, 9, 0, 0x42]),
      "400 Bad Request",
      /a value of 9 bytes runs past the block/,
    ],
    [
      "a length cut short",
      Buffer.from([0, 4, 0, 0, 1, 0, 0x41, 1]),
      "400 Bad Request",
      /the length of a value is cut short/,
    ],
    ["an empty name", Buffer.from([0, 4, 0, 0, 0, 0, 0, 0]), "400 Bad Request", /empty name/],
  ];
  it.each(bad)("refuses %s", (_name, head, status, message) => {
    expect(() => parseUwsgiHead(head)).toThrow(message);
    try {
      parseUwsgiHead(head);
    } catch (error) {
      expect(error).toBeInstanceOf(BadRequest);
      expect((error as BadRequest).status).toBe(status);
    }
  });
});

describe("uwsgi response head (an HTTP status line, as uWSGI and mod_proxy_uwsgi expect)", () => {
  it.each([
    [
      "200 OK",
      [["Content-Type", "text/plain"]],
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    ],
    [
      "404 Not Found",
      [
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ],
      "HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    ],
    ["204 No Content", [], "HTTP/1.1 204 No Content\r\n\r\n"],
  ] as [string, [string, string][], string][])("%s", (status, headers, bytes) => {
    expect(formatHttpHead(status, headers).toString("latin1")).toBe(bytes);
  });
});

const UWSGI: GatewayUnderTest = {
  command: "uwsgi",
  encode: (shape) => encodeUwsgiRequest(uwsgiVars(shape), shape.body),
  parse: parseHttpResponse,
  // A name length of 200 in a block of 8 bytes.
  malformed: Buffer.from([0, 8, 0, 0, 200, 0, 0x41, 0x42, 2, 0, 0x43, 0x44]),
  hugePrefix: Buffer.from([0, 0xff, 0xff, 0]),
};

describeGatewayProcess(UWSGI);

describe("tsgi uwsgi: modifiers and variables", () => {
  const group = new ProcessGroup();
  afterAll(() => group.cleanUp());
  let server: TsgiFcgi;
  beforeAll(async () => {
    server = await startTsgiServer(group, "uwsgi", { listen: "tcp" });
  });

  it("nginx's uwsgi_params: the whole path as PATH_INFO, SCRIPT_NAME empty", async () => {
    const environ = await inspect(UWSGI, server.address, { uri: "/inspect/a%20b?x=1" });
    expect([environ.SCRIPT_NAME, environ.PATH_INFO, environ.QUERY_STRING]).toEqual([
      "",
      "/inspect/a b",
      "x=1",
    ]);
  });

  it("modifier1 30 with uwsgi_param SCRIPT_NAME: the prefix comes off PATH_INFO", async () => {
    const vars = uwsgiVars({ uri: "/app/inspect", extra: [["SCRIPT_NAME", "/app"]] });
    const reply = await exchange(server.address, encodeUwsgiRequest(vars, undefined, 30));
    const { environ } = JSON.parse(parseHttpResponse(reply.bytes).body.toString()) as {
      environ: Record<string, string>;
    };
    expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/app", "/inspect"]);
  });

  it("PATH_INFO sent twice (stock params, then uwsgi_param PATH_INFO): the last one counts", async () => {
    const environ = await inspect(UWSGI, server.address, {
      uri: "/app/inspect",
      extra: [
        ["SCRIPT_NAME", "/app"],
        ["PATH_INFO", "/inspect"],
      ],
    });
    expect([environ.SCRIPT_NAME, environ.PATH_INFO]).toEqual(["/app", "/inspect"]);
  });

  it("an unknown modifier1 gets 501 and a log line; the next request is served", async () => {
    const reply = await exchange(
      server.address,
      encodeUwsgiRequest(uwsgiVars({ uri: "/hello" }), undefined, 5),
    );
    expect(parseHttpResponse(reply.bytes).status).toBe("501 Not Implemented");
    await server.proc.waitForStderr(/uwsgi modifier1 5 is not supported/);
    await stillServes(UWSGI, server.address);
  });

  it("HTTP_TRANSFER_ENCODING: chunked beside a de-chunked body: CONTENT_LENGTH decides", async () => {
    const body = Buffer.from("hello body");
    const reply = await exchange(
      server.address,
      UWSGI.encode({
        method: "POST",
        uri: "/sha256",
        body,
        extra: [["HTTP_TRANSFER_ENCODING", "chunked"]],
      }),
    );
    expect(JSON.parse(parseHttpResponse(reply.bytes).body.toString())).toMatchObject({
      length: body.length,
    });
  });
});
