// The "peer no longer wants this response" state of one request, watched
// without an AbortSignal unless someone asks for one (tsgi.get_signal).
//
// An AbortController is an EventTarget: building one for every request and
// listening on it (the engine racing an async body against the abort, the Node
// adapter watching for the client leaving) cost a Koa hello under `tsgi fcgi`
// about 40% of its throughput, most of it in the garbage collector, which kept
// those objects past young-generation collections. Here a listener is a
// function in an array; the AbortSignal is built when tsgi.get_signal is
// first called, and aborts together with the watch.

type Listener = () => void;

/** What the engine and the adapters use of an AbortWatch. */
export interface PeerWatch {
  readonly aborted: boolean;
  /** The AbortSignal of the same state (tsgi.get_signal's), built on first read. */
  readonly signal: AbortSignal;
  /** Calls `listener` once when the peer leaves (at once if it has); returns what stops that. */
  listen(listener: Listener): () => void;
}

export class AbortWatch implements PeerWatch {
  #aborted = false;
  #reason: unknown;
  #makeReason: (() => unknown) | undefined;
  #listeners: Listener[] | undefined;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** The AbortSignal of the same state, built on first read (aborted already when the watch is). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reasonNow());
    }
    return this.#controller.signal;
  }

  /** Aborts once: the signal first (the application's listeners), then the watch's listeners. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const listener of listeners) callListener(listener);
  }

  /**
   * As abort(), with the reason built only if an AbortSignal needs it (now or
   * later): most requests end without anyone asking for a signal, and an Error
   * per request, with its stack trace, is a cost every connection would pay.
   */
  abortLazily(makeReason: () => unknown): void {
    if (this.#aborted) return;
    if (this.#controller) {
      this.abort(makeReason());
      return;
    }
    this.#makeReason = makeReason;
    this.abort(undefined);
  }

  #reasonNow(): unknown {
    if (this.#makeReason) {
      this.#reason = this.#makeReason();
      this.#makeReason = undefined;
    }
    return this.#reason;
  }

  /** Calls `listener` once when the watch aborts (at once if it has); returns what stops that. */
  listen(listener: Listener): () => void {
    if (this.#aborted) {
      callListener(listener);
      return noop;
    }
    (this.#listeners ??= []).push(listener);
    return () => {
      const listeners = this.#listeners;
      const index = listeners ? listeners.indexOf(listener) : -1;
      if (index !== -1) listeners!.splice(index, 1);
    };
  }
}

function noop(): void {}

/** As an EventTarget does: a listener's exception does not stop the others, and surfaces as an uncaught one. */
function callListener(listener: Listener): void {
  try {
    listener();
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}

const WATCH = Symbol("tsgi.abortWatch");

/** The environ's tsgi.get_signal when a watch stands behind it: the function carries its watch. */
type WatchedGetter = (() => AbortSignal) & { [WATCH]?: PeerWatch };

/** Makes environ's tsgi.get_signal give the signal of `watch`, built only when asked for. */
export function defineWatchedSignal(environ: object, watch: PeerWatch): void {
  const get: WatchedGetter = () => watch.signal;
  get[WATCH] = watch;
  (environ as Record<string, unknown>)["tsgi.get_signal"] = get;
}

/**
 * Calls `listener` once when the environ's signal aborts (at once if it has):
 * through the gateway's watch while tsgi.get_signal is still the one the
 * gateway set, else by listening on the signal it gives. Returns what stops that.
 */
export function onSignalAbort(environ: object, listener: Listener): () => void {
  const get = (environ as Record<string, unknown>)["tsgi.get_signal"] as WatchedGetter | undefined;
  if (typeof get !== "function") return noop;
  const watch = get[WATCH];
  if (watch !== undefined) return watch.listen(listener);
  const signal = get();
  if (signal === undefined || signal === null) return noop;
  if (signal.aborted) {
    listener();
    return noop;
  }
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

/** Whether the environ's signal has aborted (the client left), without building an AbortSignal where a watch stands behind it. */
export function signalAborted(environ: object): boolean {
  const get = (environ as Record<string, unknown>)["tsgi.get_signal"] as WatchedGetter | undefined;
  if (typeof get !== "function") return false;
  const watch = get[WATCH];
  return watch !== undefined ? watch.aborted : get()?.aborted === true;
}
