// What a check does when a rule is broken: it throws a ValidationError naming
// the side at fault and the rule's id, through the Recorder that the
// validator() wrapper keeps for every request it checks.

/** Which side of the interface broke a rule. */
export type Side = "app" | "gateway";

/**
 * A TSGI rule was broken. The message starts with the side at fault and ends
 * with the id of the rule, as docs/SPEC.md tags it: `[app] … [status.format]`.
 */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(
    readonly side: Side,
    /** The rule's id in docs/SPEC.md, such as `status.format`. */
    readonly rule: string,
    detail: string,
  ) {
    super(`[${side}] ${detail} [${rule}]`);
  }
}

export type Fail = (side: Side, rule: string, detail: string) => never;

/** What the validator knows about one body between the gateway receiving it and closing it. */
export interface BodyState {
  readonly request: string;
  closed: boolean;
}

/** How the checks of one request report to the validator() that wraps the application. */
export interface Recorder {
  /** Records the violation and throws it. */
  fail: Fail;
  /** The gateway received a body; it must close it (found out when it is collected). */
  opened(body: object, state: BodyState): void;
  closed(state: BodyState): void;
}
