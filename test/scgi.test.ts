// SCGI: the netstring parser and the response head byte for byte, then the
// real `tsgi scgi` process over raw sockets (run `npm run build` first).

import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { formatCgiHead } from "../src/headers.js";
import { BadRequest } from "../src/server/request-connection.js";
import { parseScgiHead, scgiHeadSize } from "../src/scgi/protocol.js";
import { parseCgiResponse } from "./helpers/cgi.js";
import {
  describeGatewayProcess,
  inspect,
  type GatewayUnderTest,
} from "./helpers/request-gateway-suite.js";
import { encodeScgiRequest, exchange, scgiVars } from "./helpers/scgi-client.js";

// The example request of the SCGI specification (python.ca/scgi/protocol.txt).
const SPEC_EXAMPLE = Buffer.from(
  "70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,",
  "latin1",
);

describe("SCGI header block sizes (scgiHeadSize)", () => {
  const table: [string, string, number | undefined][] = [
    ["nothing yet", "", undefined],
    ["part of the length", "7", undefined],
    ["length and colon: digits + ':' + block + ','", "70:", 74],
    ["an empty block", "0:", 3],
    ["the spec's example", SPEC_EXAMPLE.toString("latin1"), 74],
  ];
  it.each(table)("%s", (_name, input, size) => {
    expect(scgiHeadSize(Buffer.from(input, "latin1"))).toBe(size);
  });

  const bad: [string, string][] = [
    ["no digits before ':'", ":abc"],
    ["a letter in the length", "7x:"],
    ["ten digits without ':' (over any limit)", "1234567890"],
    ["a negative length", "-5:"],
  ];
  it.each(bad)("refuses %s with 400", (_name, input) => {
    expect(() => scgiHeadSize(Buffer.from(input, "latin1"))).toThrow(BadRequest);
  });
});

describe("SCGI header blocks (parseScgiHead)", () => {
  it("parses the spec's example", () => {
    expect(parseScgiHead(SPEC_EXAMPLE)).toEqual({
      CONTENT_LENGTH: "27",
      SCGI: "1",
      REQUEST_METHOD: "POST",
      REQUEST_URI: "/deepthought",
    });
  });

  // The variables every request carries first; the cases below follow them.
  const REQUIRED = "CONTENT_LENGTH\x000\x00SCGI\x001\x00";
  const netstring = (block: string) => `${block.length}:${block},`;
  const table: [string, string, Record<string, string>][] = [
    ["an empty value", "A\x00\x00B\x00\x00", { A: "", B: "" }],
    [
      "a name sent twice: the last value counts",
      "A\x001\x00B\x002\x00A\x003\x00",
      { A: "3", B: "2" },
    ],
    ["bytes over 0x7f as Latin-1", "X\x00\xe9\xff\x00", { X: "\xe9\xff" }],
    ["an empty CONTENT_LENGTH (no body)", "", {}],
  ];
  it.each(table)("%s", (_name, rest, vars) => {
    const input = Buffer.from(netstring(REQUIRED + rest), "latin1");
    expect(parseScgiHead(input)).toEqual({ CONTENT_LENGTH: "0", SCGI: "1", ...vars });
  });

  it("takes SCGI = 1 anywhere (lighttpd sends it last)", () => {
    const input = Buffer.from(
      netstring("CONTENT_LENGTH\x000\x00A\x00b\x00SCGI\x001\x00"),
      "latin1",
    );
    expect(parseScgiHead(input)).toEqual({ CONTENT_LENGTH: "0", A: "b", SCGI: "1" });
  });

  const bad: [string, string, RegExp][] = [
    ["no ',' at the end", "4:A\x00B\x00;", /does not end with ','/],
    ["the last value without NUL", "3:A\x00B,", /the last one has no NUL/],
    ["a name without a value", "2:A\x00,", /a name without a value/],
    ["an empty name", "3:\x00B\x00,", /empty name/],
    ["an empty block", "0:,", /must begin with CONTENT_LENGTH/],
    [
      "CONTENT_LENGTH not first",
      "24:SCGI\x001\x00CONTENT_LENGTH\x000\x00,",
      /must begin with CONTENT_LENGTH/,
    ],
    ["no SCGI variable", "17:CONTENT_LENGTH\x000\x00,", /lack SCGI = "1"/],
    ["SCGI other than 1", "24:CONTENT_LENGTH\x000\x00SCGI\x002\x00,", /lack SCGI = "1"/],
  ];
  it.each(bad)("refuses %s with 400", (_name, input, message) => {
    const parse = () => parseScgiHead(Buffer.from(input, "latin1"));
    expect(parse).toThrow(message);
    try {
      parse();
    } catch (error) {
      expect((error as BadRequest).status).toBe("400 Bad Request");
    }
  });
});

describe("SCGI response head (CGI-style, as mod_proxy_scgi requires)", () => {
  it.each([
    [
      "200 OK",
      [["Content-Type", "text/plain"]],
      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    ],
    [
      "302 Found",
      [
        ["Location", "/x"],
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ],
      "Status: 302 Found\r\nLocation: /x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    ],
    ["204 No Content", [], "Status: 204 No Content\r\n\r\n"],
  ] as [string, [string, string][], string][])("%s", (status, headers, bytes) => {
    expect(formatCgiHead(status, headers).toString("latin1")).toBe(bytes);
  });
});

describe("the test client's encoding", () => {
  it("matches the spec's example byte for byte", () => {
    const vars: [string, string][] = [
      ["CONTENT_LENGTH", "27"],
      ["SCGI", "1"],
      ["REQUEST_METHOD", "POST"],
      ["REQUEST_URI", "/deepthought"],
    ];
    expect(encodeScgiRequest(vars)).toEqual(SPEC_EXAMPLE);
  });
});

const SCGI: GatewayUnderTest = {
  command: "scgi",
  encode: (shape) => encodeScgiRequest(scgiVars(shape), shape.body),
  parse: parseCgiResponse,
  malformed: Buffer.from("12x:CONTENT_LENGTH\x000\x00,", "latin1"),
  hugePrefix: Buffer.from("999999999:CONTENT_LENGTH\x000\x00"),
};

describeGatewayProcess(SCGI);

describe("tsgi scgi: environ from what the front ends send", () => {
  it("nginx's stock scgi_params (no SCRIPT_NAME, no PATH_INFO): PATH_INFO is the decoded DOCUMENT_URI", async () => {
    const { startTsgiServer } = await import("./helpers/tsgi.js");
    const { ProcessGroup } = await import("./helpers/processes.js");
    const group = new ProcessGroup();
    try {
      const server = await startTsgiServer(group, "scgi", { listen: "tcp" });
      const environ = await inspect(SCGI, server.address, { uri: "/inspect/a%20b?x=1" });
      expect(environ.SCRIPT_NAME).toBe("");
      expect(environ.PATH_INFO).toBe("/inspect/a b");
      expect(environ.QUERY_STRING).toBe("x=1");
      expect(environ.SCGI).toBe("1");
      const prefixed = await inspect(SCGI, server.address, {
        uri: "/app/inspect",
        extra: [
          ["SCRIPT_NAME", "/app"],
          ["PATH_INFO", "/inspect"],
        ],
      });
      expect([prefixed.SCRIPT_NAME, prefixed.PATH_INFO]).toEqual(["/app", "/inspect"]);
      const repeated = await inspect(SCGI, server.address, {
        uri: "/x",
        extra: [
          ["PATH_INFO", "/hello"],
          ["PATH_INFO", "/inspect"],
        ],
      });
      expect(repeated.PATH_INFO).toBe("/inspect");
    } finally {
      await group.cleanUp();
    }
  });
});

describe("tsgi scgi: a header block that breaks the SCGI rules is refused (the real process, raw bytes)", () => {
  // Golden: the whole reply, byte for byte; then the log line; then the next request is served.
  const cases: [string, string, string][] = [
    [
      "CONTENT_LENGTH not first",
      "24:SCGI\x001\x00CONTENT_LENGTH\x000\x00,",
      "SCGI headers must begin with CONTENT_LENGTH",
    ],
    [
      "no CONTENT_LENGTH at all",
      "26:SCGI\x001\x00REQUEST_URI\x00/hello\x00,",
      "SCGI headers must begin with CONTENT_LENGTH",
    ],
    [
      "no SCGI variable",
      "36:CONTENT_LENGTH\x000\x00REQUEST_URI\x00/hello\x00,",
      'SCGI headers lack SCGI = "1"',
    ],
    [
      "SCGI = 0",
      "43:CONTENT_LENGTH\x000\x00SCGI\x000\x00REQUEST_URI\x00/hello\x00,",
      'SCGI headers lack SCGI = "1"',
    ],
  ];
  it.each(cases)(
    "%s: 400, a log line, and the next request is served",
    async (_name, block, reason) => {
      const { startTsgiServer } = await import("./helpers/tsgi.js");
      const { ProcessGroup } = await import("./helpers/processes.js");
      const group = new ProcessGroup();
      try {
        const server = await startTsgiServer(group, "scgi", { listen: "tcp" });
        const reply = await exchange(server.address, Buffer.from(block, "latin1"));
        expect(reply.bytes.toString("latin1")).toBe(
          "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n",
        );
        await server.proc.waitForStderr(new RegExp(`bad request, answered 400: ${reason}`));
        const next = await exchange(server.address, encodeScgiRequest(scgiVars({ uri: "/hello" })));
        expect(parseCgiResponse(next.bytes).body.toString()).toBe("hello\n");
      } finally {
        await group.cleanUp();
      }
    },
  );
});

describe("serveScgi from code", () => {
  it("listens where told, serves, counts in stats(), and closes", async () => {
    const { serveScgi } = await import("../src/index.js");
    const errors = new PassThrough();
    const server = await serveScgi(
      (environ, startResponse) => {
        startResponse("200 OK", [["Content-Type", "text/plain"]]);
        return [`${environ.REQUEST_METHOD} ${environ.PATH_INFO}`];
      },
      { listen: "127.0.0.1:0", errors },
    );
    try {
      const [host, port] = server.where.split(":");
      const reply = await exchange(
        { host, port: Number(port) },
        encodeScgiRequest(scgiVars({ uri: "/a%2Fb" })),
      );
      expect(reply.bytes.toString()).toBe(
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nGET /a/b",
      );
      expect(server.stats()).toMatchObject({ requestsServed: 1, inFlight: 0, errors: 0 });
    } finally {
      await server.close(1);
    }
  });
});
