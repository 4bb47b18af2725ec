// Copy progress arithmetic: percentages that never pass 100 until a table is done, recent rates,
// ETAs, rows counted on the COPY text stream, and how show/watch print them (issue 13).
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CopyCounter } from "../../provider/clone/copy";
import { copyProgressLine, formatRate } from "../../provider/cli/format";
import { renderFrame } from "../../provider/cli/watch-view";
import {
  copyPercent,
  copyTotal,
  etaSeconds,
  LOADING_PERCENT_CAP,
  RateWindow,
} from "../../provider/spec/progress";
import type { DbDetails } from "../../provider/spec/types";
import { sampleDb, sampleOutputs } from "../support/outputs";

describe("copy progress arithmetic (spec/progress)", () => {
  it("is 100 % only once completed, and at most 99 % while loading", () => {
    assert.equal(copyPercent("queued", null, 1000), 0);
    assert.equal(copyPercent("loading", 0, 1000), 0);
    assert.equal(copyPercent("loading", 505, 1000), 50);
    assert.equal(copyPercent("loading", 999, 1000), 99);
    // The 118 %: 80 MB copied of a 50.2 MB estimate.
    assert.equal(copyPercent("loading", 80_000_000, 50_200_000), LOADING_PERCENT_CAP);
    assert.equal(copyPercent("loading", 10, 0), LOADING_PERCENT_CAP, "no estimate, data moving");
    assert.equal(copyPercent("errored", 2000, 1000), LOADING_PERCENT_CAP);
    assert.equal(copyPercent("completed", 80_000_000, 50_200_000), 100);
    assert.equal(copyPercent("completed", 0, 0), 100, "an empty table is done");
  });

  it("never shows a total below what was copied", () => {
    assert.equal(copyTotal("loading", 80, 50), 80);
    assert.equal(copyTotal("loading", 20, 50), 50);
    assert.equal(copyTotal("queued", null, 50), 50);
    assert.equal(copyTotal("completed", 80, 50), 80, "a done table's total is its size");
    assert.equal(copyTotal("completed", null, 50), 50);
  });

  it("computes an ETA from the remaining bytes, or none when it is unknown", () => {
    assert.equal(etaSeconds(0, 1000, 100), 10);
    assert.equal(etaSeconds(950, 1000, 100), 1, "rounded up");
    assert.equal(etaSeconds(500, 1000, null), null, "no rate yet");
    assert.equal(etaSeconds(500, 1000, 0), null, "stalled");
    assert.equal(etaSeconds(1200, 1000, 100), null, "past the estimate: remainder unknown");
  });

  it("measures the rate over the recent window, not since the start", () => {
    const rate = new RateWindow(10_000);
    assert.equal(rate.rate(), null);
    rate.add(0, 0);
    assert.equal(rate.rate(), null, "one sample spans no time");
    rate.add(5_000, 5_000_000);
    assert.equal(rate.rate(), 1_000_000);
    rate.add(10_000, 10_000_000);
    rate.add(15_000, 10_500_000); // slowed down
    rate.add(20_000, 11_000_000);
    // Window [10 s, 20 s]: 1 MB in 10 s.
    assert.equal(rate.rate(), 100_000);
    rate.add(30_000, 11_000_000); // stalled
    assert.equal(rate.rate(), 0);
  });
});

describe("COPY stream counter (clone/copy)", () => {
  it("counts bytes and rows across chunk boundaries; escaped newlines are inside a row", async () => {
    // Text COPY: a newline inside a value is the two bytes `\n`; only raw 0x0A ends a row.
    const text = "1\tone\\nline\n2\t\\N\n3\ttab\\there\n\n";
    const chunks = [text.slice(0, 5), text.slice(5, 6), text.slice(6, 17), text.slice(17)];
    const counter = new CopyCounter(0);
    let out = "";
    await pipeline(
      Readable.from(chunks.map((c) => Buffer.from(c))),
      counter,
      new Writable({
        write(chunk: Buffer, _enc, done) {
          out += chunk.toString();
          done();
        },
      }),
    );
    assert.equal(out, text, "data passes through unchanged");
    assert.equal(counter.rows, 4, "three rows and one of a zero-column table");
    assert.equal(counter.bytes, Buffer.byteLength(text));
    const sample = counter.sample(2_000);
    assert.deepEqual(sample, {
      bytes: Buffer.byteLength(text),
      rows: 4,
      bytesPerSecond: Buffer.byteLength(text) / 2,
    });
  });
});

const db = (over: Partial<DbDetails>): DbDetails =>
  sampleDb({
    fullLoadQueuedTables: 1,
    fullLoadLoadingTables: 1,
    fullLoadCompletedTables: 0,
    cdcInsertCounter: 0,
    cdcUpdateCounter: 0,
    cdcDeleteCounter: 0,
    appliedChanges: 0,
    latencySeconds: null,
    fullLoadBytesCopied: 80_000_000,
    fullLoadRowsCopied: 120_000,
    fullLoadTotalBytes: 100_400_000,
    fullLoadPercent: 79,
    fullLoadBytesPerSecond: 4_100_000,
    fullLoadEtaSeconds: 5,
    message: "copying data",
    ...over,
  });

describe("copy progress in show and watch (cli)", () => {
  it("prints a database's data progress with rate and ETA, and no estimate once done", () => {
    assert.equal(formatRate(2_500_000), "2.5 MB/s");
    assert.equal(formatRate(null), "- /s");
    assert.equal(
      copyProgressLine(db({})),
      "data 79%: 80.0 MB / ~100.4 MB, 120000 rows, 4.1 MB/s, ETA 5s",
    );
    assert.equal(
      copyProgressLine(
        db({ fullLoadPercent: 100, fullLoadTotalBytes: 80_000_000, fullLoadBytesPerSecond: null }),
      ),
      "data 100%: 80.0 MB / 80.0 MB, 120000 rows",
    );
  });

  it("shows a table past its estimate at 99 % with the copied size as total", () => {
    const outputs = sampleOutputs({
      migrationName: "m",
      state: "InProgress",
      substate: "MigratingData",
      migrationMode: "Offline",
      latencySeconds: null,
      startedOn: null,
      dbDetails: { orders: db({}) },
    });
    const frame = renderFrame({
      outputs,
      tables: {
        orders: [
          {
            schema: "public",
            name: "wide",
            state: "loading",
            estimatedBytes: 50_200_000,
            rows: 120_000,
            bytes: 80_000_000,
            error: null,
            bytesPerSecond: 4_100_000,
          },
        ],
      },
    });
    const line = frame.find((l) => l.includes("public.wide")) ?? "";
    assert.match(line, /\s99%\s+120000 rows\s+80\.0 MB \/ ~80\.0 MB\s+4\.1 MB\/s\s+ETA -/, line);
    assert.ok(
      frame.some((l) => l.includes("data 79%: 80.0 MB / ~100.4 MB")),
      frame.join("\n"),
    );
  });
});
