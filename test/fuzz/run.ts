// Runs a fuzz property for a budget of cases and time and says what happened:
// shared by test/fuzz.test.ts (seconds) and bench/fuzz.js (minutes).

// FUZZ_SEED=<n> (with FUZZ_PATH=<path> from a failure report) replays a failure.

import fc from "fast-check";

export interface Budget {
  numRuns: number;
  timeLimitMs: number;
}

export interface Outcome {
  numRuns: number;
  failure: string | undefined;
}

function replay(): { seed?: number; path?: string } {
  const seed = process.env.FUZZ_SEED;
  if (seed === undefined || seed === "") return {};
  return { seed: Number(seed), ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}) };
}

function outcome<Ts>(details: fc.RunDetails<Ts>): Outcome {
  if (!details.failed) return { numRuns: details.numRuns, failure: undefined };
  const error =
    details.errorInstance instanceof Error
      ? details.errorInstance.message
      : String(details.errorInstance);
  return {
    numRuns: details.numRuns,
    failure: `${error}\n${fc.defaultReportMessage(details) ?? ""}`,
  };
}

/** Runs a synchronous property; the time limit stops it early without failing. */
export function runProperty<Ts extends [unknown, ...unknown[]]>(
  property: fc.IPropertyWithHooks<Ts>,
  budget: Budget,
): Outcome {
  return outcome(
    fc.check(property, {
      numRuns: budget.numRuns,
      interruptAfterTimeLimit: budget.timeLimitMs,
      markInterruptAsFailure: false,
      ...replay(),
    }),
  );
}

export async function runAsyncProperty<Ts extends [unknown, ...unknown[]]>(
  property: fc.IAsyncPropertyWithHooks<Ts>,
  budget: Budget,
): Promise<Outcome> {
  return outcome(
    await fc.check(property, {
      numRuns: budget.numRuns,
      interruptAfterTimeLimit: budget.timeLimitMs,
      markInterruptAsFailure: false,
      ...replay(),
    }),
  );
}
