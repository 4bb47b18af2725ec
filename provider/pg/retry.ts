// Retrying and waiting: how long transient failures are retried (a window of continuous failure,
// reopened by an attempt that had been working), and the one sleep every module waits with.

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
