// The one way tests wait: poll an observable condition (a row count, a state, a process gone)
// until it holds; and, apart, a named pause for tests that deliberately let time pass.
import { inspect } from "node:util";

export interface UntilOptions {
  /** What is awaited, for the failure message ("the worker to exit"). */
  readonly what: string;
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/** What a condition returns while it does not hold yet. */
type NotYet = undefined | null | false;

/**
 * Polls `condition` until it returns something other than undefined, null or false (or, with
 * `accept`, a value `accept` takes), and returns that. Fails after `timeoutMs` naming `what` and
 * the last value seen. A condition that throws fails the wait: errors are not retried away.
 */
export function until<T>(
  probe: () => T | Promise<T>,
  options: UntilOptions & { readonly accept: (value: T) => boolean },
): Promise<T>;
export function until<T>(
  condition: () => T | NotYet | Promise<T | NotYet>,
  options: UntilOptions,
): Promise<Exclude<T, NotYet>>;
export async function until<T>(
  condition: () => T | Promise<T>,
  options: UntilOptions & { readonly accept?: (value: T) => boolean },
): Promise<T> {
  const { what, timeoutMs = 60_000, intervalMs = 200 } = options;
  const accept =
    options.accept ?? ((v: T): boolean => v !== undefined && v !== null && v !== false);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (accept(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last seen: ${inspect(value, { depth: 4 })})`,
      );
    }
    await pause(intervalMs);
  }
}

/**
 * Lets `ms` pass. Only for a gap the test itself is about (an outage, writes while no worker
 * runs, a pace for a writer), never to wait for something to happen: use `until` for that.
 */
export async function pause(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}
