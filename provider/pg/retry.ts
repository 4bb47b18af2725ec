// Retrying and waiting: how long transient failures are retried (a window of continuous failure,
// reopened by an attempt that had been working), and the one sleep every module waits with.
import { isTransient } from "./errors";

/**
 * How long an outage of the source or the target is waited out by the change stream and by
 * every step of the cutover: a server rebooted or failed over by its provider is back within it.
 */
export const OUTAGE_WINDOW_MS = 30 * 60_000;

/** Delay before reconnection attempt `attempt` (1, 2, …): 0.5 s doubling up to 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 500 * 2 ** (attempt - 1));
}

export class RetryWindow {
  private since: number | undefined;

  constructor(
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records a failure. `progressed`: the failed attempt had been working (it applied changes,
   * or ran for a long while) — the failures before it no longer count. False once the failures
   * have gone on for the whole window: stop retrying.
   */
  failed(progressed: boolean): boolean {
    const t = this.now();
    if (this.since === undefined || progressed) this.since = t;
    return t - this.since < this.windowMs;
  }
}

/** Waits `ms`; resolves early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export interface RetryOptions {
  /** Continuous failure this long gives up (default OUTAGE_WINDOW_MS). */
  readonly windowMs?: number;
  /** Aborting stops the retries: the last error is thrown. */
  readonly signal?: AbortSignal;
  /** Told before each wait (the worker shows it as an event). */
  readonly onRetry?: (attempt: number, delayMs: number, err: unknown) => void | Promise<void>;
  readonly delay?: (attempt: number) => number;
  readonly now?: () => number;
}

/**
 * Runs `work` again after transient failures (lost connections, servers shutting down or
 * starting up) until it succeeds, for up to the window; any other error is thrown at once.
 * `work` must be safe to repeat.
 */
export async function retryTransient<T>(
  work: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const window = new RetryWindow(options.windowMs ?? OUTAGE_WINDOW_MS, options.now);
  const delay = options.delay ?? backoffMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!isTransient(err) || options.signal?.aborted || !window.failed(false)) throw err;
      const delayMs = delay(attempt);
      await options.onRetry?.(attempt, delayMs, err);
      await sleep(delayMs, options.signal);
    }
  }
}

/** A sleep that `wake()` (a notification, a finished task) ends early. */
export class Wakeup {
  private wakeUp: () => void = () => undefined;

  /** Waits `ms`, or until `wake()` or `signal`. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const wakeup = this;
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        wakeup.wakeUp = () => undefined;
        resolve();
      }
      this.wakeUp = done;
      if (signal?.aborted) done();
      else signal?.addEventListener("abort", done, { once: true });
    });
  }

  wake(): void {
    this.wakeUp();
  }
}
