// A fixed number of workers draining one queue: table copies, ANALYZE and verification all run
// "N at a time, largest first" with per-worker connections opened once.

/**
 * Runs `work(item, worker)` for every item with at most `workers` in flight. Each worker gets its
 * own state from `open` (e.g. a pair of connections) and `close` always runs for it. The first
 * failure stops the hand-out of further items and is rethrown after every worker has finished.
 */
export async function runWorkers<T, W>(
  items: readonly T[],
  workers: number,
  open: () => Promise<W>,
  work: (item: T, worker: W) => Promise<void>,
  close: (worker: W, failed: boolean) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const count = Math.max(1, Math.min(workers, items.length));

  const loop = async (): Promise<void> => {
    if (items.length === 0) return;
    let state: W;
    try {
      state = await open();
    } catch (err) {
      failure ??= { error: err };
      return;
    }
    let failed = false;
    try {
      while (!failure && !signal?.aborted && next < items.length) {
        const item = items[next++];
        await work(item, state);
      }
    } catch (err) {
      failed = true;
      failure ??= { error: err };
    } finally {
      await close(state, failed);
    }
  };

  await Promise.all(Array.from({ length: count }, loop));
  if (failure) throw failure.error;
}
