// A gateway server's figures (requests served, in flight, errors), as one
// process counts them and as the processes of a cluster report them to their
// primary.

import type { Outcome } from "../engine.js";

export interface ServerStats {
  startedAt: Date;
  requestsServed: number;
  inFlight: number;
  maxInFlight: number;
  errors: number;
  connections: number;
}

export interface WorkerStatus {
  pid: number;
  stats: ServerStats | undefined;
}

export interface ClusterStatus {
  primaryPid: number;
  startedAt: string;
  workers: WorkerStatus[];
}

/** Messages between the primary and its workers. */
export type ClusterMessage =
  | { tsgi: "listening" }
  | { tsgi: "retire" }
  | { tsgi: "stop"; grace: number }
  | { tsgi: "stats"; stats: ServerStats }
  | { tsgi: "status-request"; nonce: number }
  | { tsgi: "status"; nonce: number; status: ClusterStatus };

/**
 * Counts this process's requests and holds its concurrency limit: a request
 * takes a slot when admitted and gives it back when it ends.
 */
export class RequestCounters {
  readonly startedAt = new Date();
  #requestsServed = 0;
  #inFlight = 0;
  #maxInFlight = 0;
  #errors = 0;
  #onIdle: (() => void) | undefined;

  constructor(
    private readonly concurrency: number,
    /** Called once when `recycleAfter` requests have been served. */
    private readonly recycleAfter: number | undefined,
    private readonly onRecycle: (() => void) | undefined,
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Takes a request slot; false when the process is at its limit. */
  admit(): boolean {
    if (this.#inFlight >= this.concurrency) return false;
    this.#inFlight++;
    if (this.#inFlight > this.#maxInFlight) this.#maxInFlight = this.#inFlight;
    return true;
  }

  /** Gives a request slot back. */
  release(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) this.#onIdle?.();
  }

  /** The application finished a request, however it ended. */
  finished(outcome: Outcome): void {
    this.#requestsServed++;
    if (outcome === "failed" || outcome === "cut") this.#errors++;
    if (this.#requestsServed === this.recycleAfter) this.onRecycle?.();
  }

  /** Resolves when no request is in flight, or after `seconds`. */
  idle(seconds: number): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  snapshot(connections: number): ServerStats {
    return {
      startedAt: this.startedAt,
      requestsServed: this.#requestsServed,
      inFlight: this.#inFlight,
      maxInFlight: this.#maxInFlight,
      errors: this.#errors,
      connections,
    };
  }
}
