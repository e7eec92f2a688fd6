// Filling `@NAME@` placeholders in the deployment examples and the benchmark
// templates. Plain JavaScript with JSDoc types for the reason given in
// processes.js.

/**
 * Replaces every `@NAME@` in `text`; throws on one left unfilled, so a
 * renamed placeholder cannot go unnoticed.
 * @param {string} text
 * @param {Record<string, string>} values
 */
export function fill(text, values) {
  const filled = text.replace(
    /@([A-Z0-9_]+)@/g,
    (match, /** @type {string} */ name) => values[name] ?? match,
  );
  const left = /@[A-Z0-9_]+@/.exec(filled);
  if (left) throw new Error(`placeholder ${left[0]} has no value`);
  return filled;
}
