// How long transient failures are retried: a window of continuous failure, opened by the first
// failure and opened anew by a failure that ended an attempt which had been working.

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
