// Reads the rules out of docs/SPEC.md and the rule comments out of the
// sources, so that test/spec-rules.test.ts can hold them to each other the
// way Rack's lint.rb holds its SPEC: one sentence, two places, no drift.
//
// In the spec, a rule is a sentence followed by its id in brackets:
//   The gateway iterates the body once, in order. [body.once]
// The sentence starts after the previous sentence (a `.`, `!` or `?` followed
// by a space, outside code spans) or the previous rule, in the same paragraph
// or list item. An id inside a code span is an example, not a rule.
//
// In the code, a rule comment is a `// [id] sentence` line, continued on the
// `//` lines that follow; an empty `//` line, another rule comment or a line
// that is not a `//` comment ends it. A comment that explains the check goes
// after an empty `//` line.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** A rule id: lower-case words joined by dots, as `body.chunk` or `env.script-name`. */
export const RULE_ID = /[a-z][a-z0-9]*(?:\.[a-z0-9][a-z0-9-]*)+/;

export interface SpecRule {
  id: string;
  sentence: string;
}

export interface RuleComment {
  id: string;
  sentence: string;
  /** `path:line`, for failure messages. */
  where: string;
}

/** The rules of a Markdown spec, in document order (an id given twice appears twice). */
export function specRules(markdown: string): SpecRule[] {
  const rules: SpecRule[] = [];
  for (const block of blocks(markdown)) rules.push(...blockRules(block));
  return rules;
}

/** The rule comments of one source file. */
export function ruleComments(source: string, path: string): RuleComment[] {
  const start = new RegExp(`^\\s*// \\[(${RULE_ID.source})\\] (.*)$`);
  const lines = source.split("\n");
  const comments: RuleComment[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = start.exec(lines[i]);
    if (!match) continue;
    const parts = [match[2]];
    for (let j = i + 1; j < lines.length; j++) {
      const continued = /^\s*\/\/ (.*\S.*)$/.exec(lines[j]);
      if (!continued || start.test(lines[j])) break;
      parts.push(continued[1]);
    }
    comments.push({
      id: match[1],
      sentence: normalize(parts.join(" ")),
      where: `${path}:${i + 1}`,
    });
  }
  return comments;
}

/** The ids the validator names in its `fail(side, id, …)` calls. */
export function validatorFailIds(source: string): string[] {
  const calls = new RegExp(`fail\\(\\s*"(?:app|gateway)",\\s*"([^"]*)"`, "g");
  return [...source.matchAll(calls)].map((match) => match[1]);
}

/** Every `.ts` file under `dir`, as paths relative to `root`. */
export function typeScriptFiles(root: string, dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...typeScriptFiles(root, path));
    else if (entry.name.endsWith(".ts")) found.push(relative(root, join(root, path)));
  }
  return found.sort();
}

/** The rule comments of every `.ts` file under `dir`. */
export function sourceRuleComments(root: string, dir: string): RuleComment[] {
  return typeScriptFiles(root, dir).flatMap((path) =>
    ruleComments(readFileSync(join(root, path), "utf8"), path),
  );
}

/**
 * The paragraphs and list items of a Markdown text, each as one line. Fenced
 * code, headings and table rows hold no rules.
 */
function blocks(markdown: string): string[] {
  const found: string[] = [];
  let current: string[] = [];
  let fenced = false;
  const flush = () => {
    if (current.length > 0) found.push(current.join(" "));
    current = [];
  };
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) {
      flush();
      fenced = !fenced;
    } else if (fenced || line.trim() === "" || /^\s*(#|\|)/.test(line)) {
      flush();
    } else if (/^\s*(?:[-*]|\d+\.)\s/.test(line)) {
      flush();
      current.push(line.replace(/^\s*(?:[-*]|\d+\.)\s+/, ""));
    } else {
      current.push(line.trim());
    }
  }
  flush();
  return found;
}

function blockRules(text: string): SpecRule[] {
  const masked = maskCodeSpans(text);
  const tag = new RegExp(`\\[(${RULE_ID.source})\\](?!\\()`, "g");
  const rules: SpecRule[] = [];
  let from = 0;
  for (const match of masked.matchAll(tag)) {
    const segment = masked.slice(from, match.index).trimEnd();
    // The sentence's own final stop is not a boundary.
    let start = 0;
    for (const stop of segment.slice(0, -1).matchAll(/[.!?](?=\s)/g)) start = stop.index + 1;
    rules.push({
      id: match[1],
      sentence: normalize(text.slice(from + start, from + segment.length)),
    });
    from = match.index + match[0].length;
  }
  return rules;
}

/** The text with every code span's characters (backticks included) replaced by `x`, so positions still match. */
function maskCodeSpans(text: string): string {
  let masked = "";
  let i = 0;
  while (i < text.length) {
    if (text[i] !== "`") {
      masked += text[i++];
      continue;
    }
    const fence = /^`+/.exec(text.slice(i))![0];
    const end = text.indexOf(fence, i + fence.length);
    if (end === -1) {
      masked += text.slice(i);
      break;
    }
    masked += "x".repeat(end + fence.length - i);
    i = end + fence.length;
  }
  return masked;
}

/** One line of text: links become their text, bold marks go, whitespace collapses. */
export function normalize(text: string): string {
  return text
    .replace(/\[([^\]]+)\]\([^)]*\)/g, "$1")
    .replaceAll("**", "")
    .replace(/\s+/g, " ")
    .trim();
}
