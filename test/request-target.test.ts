// What an adapted application routes on: the rest of the path after its mount
// point, raw from REQUEST_URI where that agrees with SCRIPT_NAME + PATH_INFO.

import { describe, expect, it } from "vitest";
import { requestTarget } from "../src/adapters/request-target.js";
import type { Environ } from "../src/types.js";

function environ(SCRIPT_NAME: string, PATH_INFO: string, REQUEST_URI?: string): Environ {
  return { SCRIPT_NAME, PATH_INFO, REQUEST_URI } as unknown as Environ;
}

describe("requestTarget", () => {
  const cases: [string, Environ, string, string][] = [
    ["root, no REQUEST_URI", environ("", "/users/7"), "", "/users/7"],
    ["empty PATH_INFO is /", environ("/app", ""), "/app", "/"],
    ["prefix split", environ("/api", "/users/7", "/api/users/7?x=1"), "/api", "/users/7"],
    ["mounted at its own path", environ("/app", "", "/app"), "/app", "/"],
    [
      "escaped slash kept raw",
      environ("", "/pkg/@scope/name", "/pkg/@scope%2Fname"),
      "",
      "/pkg/@scope%2Fname",
    ],
    ["escape in the prefix", environ("/a b", "/x", "/a%20b/x"), "/a%20b", "/x"],
    ["lowercase escape kept", environ("", "/caf\xe9", "/caf%e9"), "", "/caf%e9"],
    ["lone % kept for the framework to refuse", environ("", "/a%zz", "/a%zz"), "", "/a%zz"],
    // A rewrite (.htaccess: /dir/users/7 → app.cgi/users/7): the rest still matches, the base does not.
    [
      "rewritten prefix",
      environ("/dir/app.cgi", "/users/7", "/dir/users/7"),
      "/dir/app.cgi",
      "/users/7",
    ],
    [
      "rewritten, escaped rest",
      environ("/dir/app.cgi", "/a/b", "/dir/a%2Fb"),
      "/dir/app.cgi",
      "/a%2Fb",
    ],
    // The front end normalised the path (merged slashes, resolved dot segments): encode what it decided.
    ["merged slashes", environ("", "/a/b", "//a//b"), "", "/a/b"],
    ["different path", environ("", "/other", "/x/y"), "", "/other"],
    ["absolute-form target", environ("", "/x", "http://h/x"), "", "/x"],
    ["non-ASCII target left to encoding", environ("", "/\xe9", "/\xe9"), "", "/%E9"],
    ["space encoded", environ("", "/a b"), "", "/a%20b"],
  ];
  for (const [name, env, base, path] of cases) {
    it(name, () => {
      expect(requestTarget(env)).toEqual({ base, path });
    });
  }
});
