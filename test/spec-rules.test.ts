// docs/SPEC.md and the code cannot drift apart: every rule of the spec (a
// sentence followed by its id, `[body.once]`) has a comment beside the check
// that enforces it, in the validator, the engine or a gateway, carrying the
// same id and the same sentence; every such comment names a rule the spec has.
// Rack keeps its SPEC and lint.rb together the same way. The formats are
// described in test/helpers/spec-rules.ts.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { validateHeaders } from "../src/headers.js";
import {
  normalize,
  ruleComments,
  sourceRuleComments,
  specRules,
  typeScriptFiles,
  validatorFailIds,
  type RuleComment,
} from "./helpers/spec-rules.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const rules = specRules(readFileSync(`${ROOT}/docs/SPEC.md`, "utf8"));
const specSentence = new Map(rules.map((rule) => [rule.id, rule.sentence]));
const comments = sourceRuleComments(ROOT, "src");

/** What is wrong between a spec's rules and the comments found in code, one line per problem. */
function drift(spec: Map<string, string>, found: RuleComment[]): string[] {
  const problems: string[] = [];
  const commented = new Set(found.map((comment) => comment.id));
  for (const id of spec.keys())
    if (!commented.has(id)) problems.push(`[${id}] has no check carrying its id: ${spec.get(id)}`);
  for (const comment of found) {
    const sentence = spec.get(comment.id);
    if (sentence === undefined)
      problems.push(`${comment.where}: [${comment.id}] is not a rule of docs/SPEC.md`);
    else if (sentence !== comment.sentence) {
      problems.push(
        `${comment.where}: [${comment.id}] says "${comment.sentence}", the spec says "${sentence}"`,
      );
    }
  }
  return problems;
}

describe("docs/SPEC.md", () => {
  it("has rules, each with its own id and a whole sentence", () => {
    expect(rules.length).toBeGreaterThan(50);
    const ids = rules.map((rule) => rule.id);
    expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
    for (const rule of rules) expect(rule.sentence, rule.id).toMatch(/^\S.*[.!?)]$/);
  });
});

describe("the rules and the code", () => {
  it("every rule has a check carrying its id and sentence, and every check names a rule of the spec", () => {
    expect(drift(specSentence, comments)).toEqual([]);
  });

  it("every violation the validator reports names a rule with its comment in src/validator/", () => {
    const files = typeScriptFiles(ROOT, "src/validator");
    expect(files.length).toBeGreaterThan(1);
    const sources = files.map((path) => ({
      path,
      source: readFileSync(`${ROOT}/${path}`, "utf8"),
    }));
    const inValidator = new Set(
      sources
        .flatMap(({ path, source }) => ruleComments(source, path))
        .map((comment) => comment.id),
    );
    const failIds = sources.flatMap(({ source }) => validatorFailIds(source));
    expect(failIds.length).toBeGreaterThan(30);
    expect(failIds.filter((id) => !specSentence.has(id) || !inValidator.has(id))).toEqual([]);
  });
});

describe("lists the spec and the code both hold", () => {
  it("the hop-by-hop headers of [header.hop-by-hop] are those of the set that validateHeaders checks", () => {
    const inSpec = [...specSentence.get("header.hop-by-hop")!.matchAll(/`([A-Za-z-]+)`/g)].map(
      (match) => match[1].toLowerCase(),
    );
    const source = readFileSync(`${ROOT}/src/headers.ts`, "utf8");
    const set = /const HOP_BY_HOP = new Set\(\[([^\]]*)\]\)/.exec(source)![1];
    const inCode = [...set.matchAll(/"([^"]+)"/g)].map((match) => match[1]);
    expect(inSpec.sort()).toEqual(inCode.sort());
    for (const name of inSpec)
      expect(() => validateHeaders([[name, "x"]]), name).toThrow(/hop-by-hop/);
  });
});

describe("reading rules and comments", () => {
  const spec = [
    "# Title",
    "",
    "Prose that is no rule. The body is iterated once,",
    "in order. [body.once] Another explanation (see",
    "[Errors](#errors)), then a rule with `code. in it [not.a-rule]`. [body.code]",
    "",
    "- **Output**: a `Status:` line. [cgi.output]",
    "  More text.",
    "",
    "```ts",
    "const x = 1; // [in.fence] Fenced code holds no rules.",
    "```",
    "",
    "| Key | Value |",
    "| `a` | Tables hold no rules. [in.table] |",
  ].join("\n");

  it("takes a rule's sentence from the previous sentence or rule to its id, outside code spans", () => {
    expect(specRules(spec)).toEqual([
      { id: "body.once", sentence: "The body is iterated once, in order." },
      {
        id: "body.code",
        sentence: "Another explanation (see Errors), then a rule with `code. in it [not.a-rule]`.",
      },
      { id: "cgi.output", sentence: "Output: a `Status:` line." },
    ]);
  });

  it("reads a rule comment up to an empty comment line, another rule, or code", () => {
    const source = [
      "  // [body.once] The body is iterated",
      "  //   once, in order.",
      "  //",
      "  // Why: not part of the rule.",
      "  // [body.code] Another",
      "  check();",
      "  // ordinary comment [body.once] not a rule comment",
    ].join("\n");
    expect(ruleComments(source, "x.ts")).toEqual([
      { id: "body.once", sentence: "The body is iterated once, in order.", where: "x.ts:1" },
      { id: "body.code", sentence: "Another", where: "x.ts:5" },
    ]);
  });

  it("reports a rule without a check, a check without a rule, and a sentence that differs", () => {
    const found = [
      { id: "body.once", sentence: "The body is iterated twice.", where: "a.ts:1" },
      { id: "body.gone", sentence: "A rule that was removed.", where: "b.ts:2" },
    ];
    const problems = drift(new Map(specRules(spec).map((rule) => [rule.id, rule.sentence])), found);
    expect(problems).toEqual([
      expect.stringMatching(/^\[body\.code\] has no check carrying its id/),
      expect.stringMatching(/^\[cgi\.output\] has no check carrying its id/),
      'a.ts:1: [body.once] says "The body is iterated twice.", the spec says "The body is iterated once, in order."',
      "b.ts:2: [body.gone] is not a rule of docs/SPEC.md",
    ]);
  });

  it("compares sentences with links as their text, without bold marks, and whitespace collapsed", () => {
    expect(normalize("**A**  rule (see [Errors](#errors))\n  here.")).toBe(
      "A rule (see Errors) here.",
    );
  });
});
