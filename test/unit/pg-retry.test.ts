// RetryWindow: how long transient failures are retried; retryTransient: what is retried;
// Wakeup: a wait a notification ends early; parseCopyUnits: the runtime's --copy-units.
import assert from "node:assert/strict";
import { MigrationError } from "../../provider/pg/errors";
import { backoffMs, RetryWindow, retryTransient, Wakeup } from "../../provider/pg/retry";
import { parseCopyUnits } from "../../provider/spec/inputs";

describe("RetryWindow", () => {
  it("allows retries for the window after the first failure, then refuses", () => {
    let now = 1_000;
    const w = new RetryWindow(10_000, () => now);
    assert.equal(w.failed(false), true); // opens at 1 000
    now = 6_000;
    assert.equal(w.failed(false), true);
    now = 10_999;
    assert.equal(w.failed(false), true);
    now = 11_000;
    assert.equal(w.failed(false), false);
  });

  it("opens a new window when the failed attempt had been working", () => {
    let now = 0;
    const w = new RetryWindow(10_000, () => now);
    w.failed(false);
    now = 9_000;
    assert.equal(w.failed(true), true); // progress: the window starts again at 9 000
    now = 18_000;
    assert.equal(w.failed(false), true);
    now = 19_000;
    assert.equal(w.failed(false), false);
  });
});

describe("retryTransient", () => {
  // A server shutting down, as node-postgres reports it, wrapped as the engine wraps it.
  const shuttingDown = (): Error =>
    MigrationError.wrap(
      "verify",
      Object.assign(new Error("the database system is shutting down"), { code: "57P03" }),
      "verifying",
    );

  it("runs a step again after transient errors until it succeeds", async () => {
    let calls = 0;
    const retries: number[] = [];
    const result = await retryTransient(
      async () => {
        calls++;
        if (calls < 3) throw shuttingDown();
        return "done";
      },
      { delay: () => 1, onRetry: (attempt) => void retries.push(attempt) },
    );
    assert.equal(result, "done");
    assert.equal(calls, 3);
    assert.deepEqual(retries, [1, 2]);
  });

  it("throws any other error at once", async () => {
    let calls = 0;
    const missing = Object.assign(new Error('relation "public.late_seq" does not exist'), {
      code: "42P01",
    });
    await assert.rejects(
      retryTransient(
        async () => {
          calls++;
          throw missing;
        },
        { delay: () => 1 },
      ),
      (err) => err === missing,
    );
    assert.equal(calls, 1);
  });

  it("gives up with the last error once the failures outlast the window", async () => {
    let now = 0;
    let calls = 0;
    await assert.rejects(
      retryTransient(
        async () => {
          calls++;
          now += 4_000;
          throw shuttingDown();
        },
        { windowMs: 10_000, now: () => now, delay: () => 1 },
      ),
      /shutting down/,
    );
    // Failures seen at 4, 8, 12 s: the window opened at 4 s closes at 14 s.
    assert.equal(calls, 4);
  });

  it("stops retrying when its signal aborts", async () => {
    const controller = new AbortController();
    let calls = 0;
    await assert.rejects(
      retryTransient(
        async () => {
          calls++;
          controller.abort();
          throw shuttingDown();
        },
        { signal: controller.signal, delay: () => 1 },
      ),
      /shutting down/,
    );
    assert.equal(calls, 1);
  });

  it("backs off from half a second, doubling, up to 30 s", () => {
    assert.deepEqual(
      [1, 2, 3, 7, 8, 20].map(backoffMs),
      [500, 1_000, 2_000, 30_000, 30_000, 30_000],
    );
  });
});

describe("Wakeup", () => {
  it("ends a wait early when woken, and after its time otherwise", async () => {
    const wakeup = new Wakeup();
    const started = Date.now();
    const waiting = wakeup.wait(60_000);
    wakeup.wake();
    await waiting;
    assert.ok(Date.now() - started < 1_000);
    const timed = Date.now();
    await wakeup.wait(50);
    assert.ok(Date.now() - timed >= 45);
    // A wake with nobody waiting is not kept for the next wait.
    wakeup.wake();
    const later = Date.now();
    await wakeup.wait(50);
    assert.ok(Date.now() - later >= 45);
  });

  it("ends at once on an aborted signal", async () => {
    const stop = new AbortController();
    stop.abort();
    const started = Date.now();
    await new Wakeup().wait(60_000, stop.signal);
    assert.ok(Date.now() - started < 1_000);
  });
});

describe("parseCopyUnits", () => {
  it("takes whole numbers from 0 and refuses anything else, naming the option", () => {
    assert.equal(parseCopyUnits(undefined), undefined);
    assert.equal(parseCopyUnits("0"), 0);
    assert.equal(parseCopyUnits("12"), 12);
    for (const bad of ["-1", "x", "1.5", "", "99999"]) {
      assert.throws(() => parseCopyUnits(bad), /--copy-units must be a whole number/);
    }
  });
});
