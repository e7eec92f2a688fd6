// A reporter for `node --test` (`--test-reporter`): one JSON line per test
// that ran, `{ title, file, state, error }`, with the title made of its
// enclosing suites' names, as Mocha's fullTitle is. Suites themselves are
// left out, so the counts are of tests only. run.js reads these lines.

/** @typedef {{ name: string, nesting: number, file?: string, skip?: unknown, todo?: unknown, details?: { type?: string, error?: unknown } }} TestEventData */

/**
 * @param {AsyncIterable<{ type: string, data: TestEventData }>} source
 * @returns {AsyncGenerator<string>}
 */
export default async function* jsonLines(source) {
  /** The names of the tests being reported, by nesting level, for each file. */
  /** @type {Map<string, string[]>} */
  const stacks = new Map();
  for await (const { type, data } of source) {
    const file = data.file ?? "";
    if (!stacks.has(file)) stacks.set(file, []);
    const stack = /** @type {string[]} */ (stacks.get(file));
    if (type === "test:start") {
      stack.length = data.nesting;
      stack.push(data.name);
    } else if (type === "test:pass" || type === "test:fail") {
      if (data.details?.type === "suite") continue;
      const title = [...stack.slice(0, data.nesting), data.name].join(" ");
      const state = type === "test:fail" ? "failed" : data.skip || data.todo ? "pending" : "passed";
      yield JSON.stringify({ title, file, state, error: errorText(data.details?.error) }) + "\n";
    }
  }
}

/** @param {unknown} error */
function errorText(error) {
  if (!(error instanceof Error)) return undefined;
  // The runner wraps the test's own error as `cause`.
  const cause = /** @type {{ cause?: unknown }} */ (error).cause;
  return String(cause instanceof Error ? cause.message : error.message);
}
