// The one-line status every adapter prints while it waits: Pulumi diagnostics, `pgmigrate
// create --wait` progress and plain `pgmigrate watch` lines all read the same.
import assert from "node:assert/strict";
import { formatLatency, latency, statusLine } from "../../provider/api/report";
import { renderPlainLine } from "../../provider/cli/watch-view";
import { sampleDb, sampleOutputs } from "../support/outputs";

const db = sampleDb;

const outputs = sampleOutputs;

describe("migration status line (api/report)", () => {
  it("waiting for the cutover: tables, applied changes and latency", () => {
    assert.equal(
      statusLine(outputs({})),
      "WaitingForUserAction/WaitingForCutoverTrigger, tables 12/12 done, 13 changes applied, latency 0.3 s",
    );
  });

  it("sums the databases and names loading and errored tables", () => {
    const line = statusLine(
      outputs({
        state: "InProgress",
        substate: "MigratingData",
        latencySeconds: null,
        dbDetails: {
          orders: db({
            fullLoadQueuedTables: 2,
            fullLoadLoadingTables: 1,
            appliedChanges: 0,
            fullLoadBytesCopied: 300,
            fullLoadTotalBytes: 1000,
          }),
          tickets: db({
            databaseName: "tickets",
            fullLoadCompletedTables: 3,
            fullLoadErroredTables: 1,
            appliedChanges: 0,
            fullLoadBytesCopied: 1000,
            fullLoadTotalBytes: 1000,
          }),
        },
      }),
    );
    assert.equal(
      line,
      "InProgress/MigratingData, tables 15/19 done (1 loading, 1 errored), data 65%",
    );
  });

  it("offline migrations never speak of replication", () => {
    const line = statusLine(
      outputs({ migrationMode: "Offline", state: "Succeeded", substate: "Completed" }),
    );
    assert.equal(line, "Succeeded/Completed, tables 12/12 done");
  });

  it("without replication figures, the line changes only when something visible does", () => {
    const before = outputs({ latencySeconds: 12.4 });
    const after = outputs({
      latencySeconds: 0.1,
      dbDetails: { orders: db({ appliedChanges: 5_000 }) },
    });
    assert.notEqual(statusLine(before), statusLine(after));
    assert.equal(
      statusLine(before, { replication: false }),
      statusLine(after, { replication: false }),
    );
    assert.match(statusLine(after), /5,000 changes applied, latency 0\.1 s$/);
  });

  it("reads latency the same everywhere", () => {
    assert.equal(formatLatency(0.44), "0.4 s");
    assert.equal(formatLatency(12.6), "13 s");
    assert.equal(formatLatency(null), "-");
    assert.equal(latency(3), "latency 3.0 s");
    assert.equal(latency(null), "latency not measured yet");
  });

  it("is the CLI's plain watch line, after the time", () => {
    const o = outputs({});
    const at = new Date("2025-03-01T14:05:09Z");
    assert.equal(renderPlainLine({ outputs: o, tables: {} }, at), `14:05:09 ${statusLine(o)}`);
  });
});
