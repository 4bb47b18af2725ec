// Copy progress arithmetic shared by the worker, the outputs and the CLI. Bytes are COPY text
// bytes on both sides of every fraction: the copied count is measured on the stream, the total
// is estimated in the same unit (clone/estimate.ts), so a percentage compares like with like.
// An estimate can still be low (escaped characters, rows added since the statistics), so a
// table that is still loading never shows more than 99 %; 100 % means the copy committed.

/** The highest percentage of a table, or of a database's tables, that has not finished. */
export const LOADING_PERCENT_CAP = 99;

/** A rate older than this (no byte report since) is stale: the copy may be stalled. */
export const RATE_FRESH_SECONDS = 20;

export type CopyState = "queued" | "loading" | "completed" | "errored";

/** The total to show next to the copied bytes: never below what was copied. */
export function copyTotal(state: CopyState, bytes: number | null, estimated: number): number {
  const copied = bytes ?? 0;
  if (state === "completed") return bytes ?? estimated;
  return Math.max(estimated, copied);
}

/**
 * Whole percent copied: 100 exactly when completed, 0 when queued or nothing moved yet, otherwise
 * bytes over the estimate, at most LOADING_PERCENT_CAP (also when the estimate was too low).
 */
export function copyPercent(state: CopyState, bytes: number | null, estimated: number): number {
  if (state === "completed") return 100;
  const copied = bytes ?? 0;
  if (copied <= 0) return 0;
  if (estimated <= 0) return LOADING_PERCENT_CAP;
  return Math.min(LOADING_PERCENT_CAP, Math.floor((100 * copied) / estimated));
}

/**
 * Seconds left at `bytesPerSecond`, rounded up; null when unknown: no rate yet, or the copy
 * already passed its estimate (the remainder is then not known).
 */
export function etaSeconds(
  copied: number,
  estimated: number,
  bytesPerSecond: number | null,
): number | null {
  if (bytesPerSecond === null || !(bytesPerSecond > 0)) return null;
  const remaining = estimated - copied;
  if (remaining <= 0) return null;
  return Math.ceil(remaining / bytesPerSecond);
}

/** Bytes per second over the samples of the last `windowMs`: the recent rate, not the average. */
export class RateWindow {
  private readonly samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 30_000) {}

  /** Records that `bytes` had been counted at time `at` (ms); counts never decrease. */
  add(at: number, bytes: number): void {
    this.samples.push({ at, bytes });
    // Keep one sample at or before the window's start so the window is always fully spanned.
    while (this.samples.length > 2 && this.samples[1].at <= at - this.windowMs) {
      this.samples.shift();
    }
  }

  /** Null until two samples span some time. */
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.at - first.at) / 1000;
    if (seconds <= 0) return null;
    return (last.bytes - first.bytes) / seconds;
  }
}
