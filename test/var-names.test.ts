// The variable names kept from one header block to the next (SCGI, uwsgi):
// a kept name is reused only where the block has exactly those bytes.

import { describe, expect, it } from "vitest";
import { parseScgiHead } from "../src/scgi/protocol.js";
import { VarNames } from "../src/server/var-names.js";
import { parseUwsgiHead } from "../src/uwsgi/protocol.js";
import { encodeScgiRequest, encodeUwsgiRequest, type Vars } from "./helpers/scgi-client.js";

describe("VarNames", () => {
  it("gives the name at each place, reusing the string kept there only when the bytes match", () => {
    const names = new VarNames();
    const first = "\0HOST\0PORT";
    const host = names.name(0, first, 1, 5);
    expect(host).toBe("HOST");
    expect(names.name(1, first, 6, 10)).toBe("PORT");
    // The same names again, elsewhere in another block.
    const again = "xxHOST|PORT";
    expect(names.name(0, again, 2, 6)).toBe("HOST");
    expect(names.name(1, again, 7, 11)).toBe("PORT");
    // Other names of the same length at the same places.
    const other = "HOSTPOST";
    expect(names.name(0, other, 4, 8)).toBe("POST");
    expect(names.name(1, other, 0, 4)).toBe("HOST");
    // A longer and a shorter name at a kept place.
    expect(names.name(0, "HOSTNAME", 0, 8)).toBe("HOSTNAME");
    expect(names.name(0, "HOSTNAME", 0, 3)).toBe("HOS");
    expect(names.name(5, "ÿé", 0, 2)).toBe("ÿé");
  });
});

const A: Vars = [
  ["CONTENT_LENGTH", "0"],
  ["SCGI", "1"],
  ["REQUEST_METHOD", "GET"],
  ["PATH_INFO", "/a"],
];
// Same lengths at the same places, other names; then fewer, then more.
const B: Vars = [
  ["CONTENT_LENGTH", "0"],
  ["SCGI", "1"],
  ["REQUEST_METHOX", "PUT"],
  ["PATH_INFX", "/b"],
];
const C: Vars = [
  ["CONTENT_LENGTH", ""],
  ["SCGI", "1"],
];
const D: Vars = [...A, ["HTTP_X", "\xff"], ["PATH_INFO", "/last"]];

describe("header blocks parsed one after another, their names changing", () => {
  it.each([
    ["SCGI", (vars: Vars) => parseScgiHead(encodeScgiRequest(vars))],
    ["uwsgi", (vars: Vars) => parseUwsgiHead(encodeUwsgiRequest(vars))],
  ] as const)("%s: each block gives exactly its own variables", (_name, parse) => {
    for (const vars of [A, B, C, A, D, B, A]) {
      const expected = Object.fromEntries(vars.map(([name, value]) => [name, value]));
      expect(parse(vars)).toEqual(expected);
    }
  });
});
