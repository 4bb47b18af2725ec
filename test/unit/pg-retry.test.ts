// RetryWindow: how long transient failures are retried.
import assert from "node:assert/strict";
import { RetryWindow } from "../../provider/pg/retry";

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
