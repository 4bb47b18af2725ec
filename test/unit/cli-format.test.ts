// What pgmigrate prints for people: the list grid, the show summary, watch's progress bars.
import assert from "node:assert/strict";
import type { MigrationListItem } from "../../provider/api/index";
import { formatDuration, formatList, formatShow, LIST_COLUMNS } from "../../provider/cli/format";
import { azureMigration } from "../../provider/cli/azure-json";
import { formatBytes, progressBar, renderFrame } from "../../provider/cli/watch-view";
import { warningPrinter } from "../../provider/pulumi/diagnostics";
import { sampleDb, sampleOutputs } from "../support/outputs";

const item = (over: Partial<MigrationListItem>): MigrationListItem => ({
  name: "orders-1",
  state: "InProgress",
  substate: "MigratingData",
  migrationMode: "Online",
  migrationOption: "ValidateAndMigrate",
  sourceServer: "10.1.0.4:5432",
  sourceServerType: "AWS_AURORA",
  databases: ["orders", "ticketdb"],
  startedOn: "2025-03-01T14:02:07.123Z",
  endedOn: null,
  durationSeconds: 3725,
  ...over,
});

const db = sampleDb;

const outputs = sampleOutputs;

describe("pgmigrate output formatting", () => {
  it("prints the list grid with the reference service's columns, in the given order", () => {
    const text = formatList([
      item({ name: "newer", migrationMode: "Offline", migrationOption: "Migrate" }),
      item({ name: "older-one", state: "Succeeded", durationSeconds: 42, sourceServerType: "" }),
    ]);
    const lines = text.split("\n");
    assert.equal(lines.length, 3);
    const header = lines[0];
    let at = -1;
    for (const column of LIST_COLUMNS) {
      const next = header.indexOf(column, at + 1);
      assert.ok(next > at, `${column} follows the previous column in: ${header}`);
      at = next;
    }
    assert.deepEqual(
      [...LIST_COLUMNS],
      [
        "Name",
        "Status",
        "Migration mode",
        "Migration type",
        "Source server",
        "Source server type",
        "Databases",
        "Duration",
        "Start time",
      ],
    );
    assert.ok(lines[1].startsWith("newer "));
    assert.ok(lines[2].startsWith("older-one "));
    // Columns line up: every row has its Status where the header has it.
    const statusAt = header.indexOf("Status");
    assert.equal(lines[1].slice(statusAt, statusAt + 10), "InProgress");
    assert.equal(lines[2].slice(statusAt, statusAt + 9), "Succeeded");
    assert.match(
      lines[1],
      /Offline\s+Migrate\s+10\.1\.0\.4:5432\s+AWS_AURORA\s+orders, ticketdb\s+1h 02m\s+2025-03-01 14:02:07Z$/,
    );
    assert.match(lines[2], /-\s+orders, ticketdb\s+42s\s+/);
  });

  it("formats durations at a useful precision", () => {
    assert.equal(formatDuration(null), "-");
    assert.equal(formatDuration(5.7), "5s");
    assert.equal(formatDuration(192), "3m 12s");
    assert.equal(formatDuration(7500), "2h 05m");
    assert.equal(formatDuration(3 * 86400 + 4 * 3600 + 59), "3d 04h");
  });

  it("summarizes state, databases, failed validations and verification", () => {
    const text = formatShow(
      outputs({
        state: "ValidationFailed",
        substate: "Failed",
        error: "validation failed",
        validation: {
          status: "Failed",
          serverLevel: [
            { type: "WalLevel", state: "Succeeded", messages: [] },
            { type: "ReplicationSlots", state: "Warning", messages: ["only 2 free slots"] },
          ],
          databaseLevel: [
            {
              databaseName: "orders",
              summary: [
                {
                  type: "ReplicaIdentity",
                  state: "Failed",
                  messages: ["public.t has no primary key"],
                },
              ],
            },
          ],
        },
        verification: {
          status: "Failed",
          tables: [
            {
              databaseName: "orders",
              table: "public.a",
              method: "counts",
              sourceRows: 3,
              targetRows: 3,
              match: true,
            },
            {
              databaseName: "orders",
              table: "public.b",
              method: "snapshot",
              difference: "key (3) is missing on the target",
              sourceRows: 5,
              targetRows: 4,
              match: false,
            },
          ],
        },
      }),
      "127.0.0.1:5432",
    );
    assert.match(text, /Status:\s+ValidationFailed \(Failed\)/);
    assert.match(text, /Error:\s+validation failed/);
    assert.match(text, /! server: ReplicationSlots Warning — only 2 free slots/);
    assert.match(text, /✗ orders: ReplicaIdentity Failed — public\.t has no primary key/);
    assert.ok(!text.includes("WalLevel"), "succeeded checks are not listed");
    assert.match(text, /orders: InProgress, tables 12\/12 copied/);
    assert.match(text, /10 inserts, 2 updates, 1 deletes; applied 13, incoming 0; latency 0\.3 s/);
    assert.match(text, /Verification: Failed \(2 tables, 1 mismatched\)/);
    assert.match(
      text,
      /✗ orders public\.b: source 5 rows, target 4 rows; key \(3\) is missing on the target/,
    );
  });

  it("shows where the cutover stopped and the last commit it applied", () => {
    const text = formatShow(
      outputs({
        state: "Succeeded",
        substate: "Completed",
        cutoverLsn: "0/19F2948",
        dbDetails: {
          orders: db({
            migrationState: "Succeeded",
            cutoverLsn: "0/19F2948",
            lastAppliedCommitLsn: "0/19F2910",
            lastAppliedCommitTime: "2025-03-01T15:00:01.250Z",
          }),
        },
      }),
      "pg:5432",
    );
    assert.match(text, /Cutover:\s+at source WAL position 0\/19F2948/);
    assert.match(
      text,
      /cutover at 0\/19F2948; last applied commit 0\/19F2910 \(2025-03-01 15:00:01/,
    );
    const before = formatShow(outputs({}), "pg:5432");
    assert.ok(!before.includes("Cutover:") && !before.includes("cutover at"), before);
  });

  it("draws progress bars per table during the copy and counters during replication", () => {
    assert.equal(progressBar(0.5, 10), "[#####-----]");
    assert.equal(progressBar(2, 4), "[####]");
    assert.equal(formatBytes(2_700_000), "2.7 MB");
    const copying = renderFrame({
      outputs: outputs({
        state: "InProgress",
        substate: "MigratingData",
        latencySeconds: null,
        dbDetails: {
          orders: db({
            fullLoadQueuedTables: 1,
            fullLoadLoadingTables: 1,
            fullLoadCompletedTables: 1,
          }),
          ticketdb: db({ databaseName: "ticketdb", latencySeconds: 1.5 }),
        },
      }),
      tables: {
        orders: [
          {
            schema: "public",
            name: "done",
            state: "completed",
            estimatedBytes: 1000,
            rows: 10,
            bytes: 1000,
            error: null,
          },
          {
            schema: "public",
            name: "big",
            state: "loading",
            estimatedBytes: 2_000_000,
            rows: 500,
            bytes: 1_000_000,
            error: null,
            bytesPerSecond: 250_000,
          },
          {
            schema: "public",
            name: "later",
            state: "queued",
            estimatedBytes: 10,
            rows: null,
            bytes: null,
            error: null,
          },
        ],
      },
    });
    assert.match(copying[0], /^orders-1\s+InProgress \(MigratingData\)\s+Online/);
    const big = copying.findIndex((l) => l.includes("public.big"));
    assert.ok(
      big > 0 && big < copying.findIndex((l) => l.includes("public.done")),
      "loading tables first",
    );
    assert.match(
      copying[big],
      /\[##########----------\]\s+50%\s+500 rows\s+1\.0 MB \/ ~2\.0 MB\s+250\.0 kB\/s\s+ETA 4s/,
    );
    assert.ok(copying.some((l) => /public\.done\s+\[#{20}\] 100%/.test(l)));
    assert.ok(
      copying.some((l) =>
        /latency 1\.5 s\s+inserts 10\s+updates 2\s+deletes 1\s+applied 13\s+incoming 0/.test(l),
      ),
      copying.join("\n"),
    );
  });
});

describe("warnings and events for people", () => {
  const events = [
    { at: "2025-03-01T14:02:07.000Z", level: "info" as const, database: null, message: "created" },
    {
      at: "2025-03-01T14:03:00.000Z",
      level: "warning" as const,
      database: "orders",
      message: 'role "app" is missing: its tables belong to the target user',
    },
  ];

  it("show lists the warnings and the recent events", () => {
    const text = formatShow(outputs({ events, warnings: [events[1]] }), "pg:5432");
    const warningsAt = text.indexOf("Warnings:");
    const eventsAt = text.indexOf("Recent events:");
    assert.ok(warningsAt > 0 && eventsAt > warningsAt, text);
    assert.match(
      text.slice(warningsAt, eventsAt),
      /2025-03-01 14:03:00Z warning orders: role "app" is missing/,
    );
    assert.match(text.slice(eventsAt), /info\s+created/);
  });

  it("show has no such sections when nothing happened", () => {
    const text = formatShow(outputs({}), "pg:5432");
    assert.ok(!text.includes("Warnings:") && !text.includes("Recent events:"), text);
  });

  it("watch shows the latest events under the progress", () => {
    const frame = renderFrame({ outputs: outputs({ events }), tables: {} }, 40);
    const at = frame.indexOf("  events:");
    assert.ok(at > 0, frame.join("\n"));
    assert.match(frame[at + 2], /warning orders: role "app" is missing/);
  });
});

describe("warnings as Pulumi diagnostics", () => {
  it("prints each warning once, on the resource's log", () => {
    const printed: string[] = [];
    const print = warningPrinter(
      { info: () => undefined, warn: (m) => printed.push(m) },
      "orders-1",
    );
    const w = {
      at: "2025-03-01T14:03:00.000Z",
      level: "warning" as const,
      database: "orders",
      message: "grants to a missing role were left out",
    };
    print(outputs({ warnings: [w] }));
    print(outputs({ warnings: [w] }));
    print(outputs({ warnings: [w, { ...w, at: "2025-03-01T14:04:00.000Z", database: null }] }));
    assert.deepEqual(printed, [
      "pgmigrate orders-1: orders: grants to a missing role were left out",
      "pgmigrate orders-1: grants to a missing role were left out",
    ]);
  });
});

describe("pgmigrate show --output azure", () => {
  it("prints the shape of az postgres flexible-server migration show", () => {
    const shown = azureMigration(
      outputs({
        state: "Failed",
        substate: "Completed",
        error: "table public.t missing on the target",
        validation: {
          status: "Warning",
          serverLevel: [{ type: "SourceVersion", state: "Succeeded", messages: [] }],
          databaseLevel: [
            {
              databaseName: "orders",
              summary: [{ type: "Privileges", state: "Warning", messages: ["role app missing"] }],
            },
          ],
        },
      }),
      "pg:5432",
    );
    assert.equal(shown.name, "orders-1");
    assert.equal(shown.type, "Microsoft.DBforPostgreSQL/flexibleServers/migrations");
    assert.equal(shown.id, "/servers/pg:5432/migrations/orders-1");
    const status = shown.properties.currentStatus;
    assert.equal(status.state, "Failed");
    assert.equal(status.error, "table public.t missing on the target");
    assert.equal(status.currentSubStateDetails.currentSubState, "Completed");
    assert.equal(shown.properties.migrationMode, "Online");
    assert.deepEqual(shown.properties.dbsToMigrate, ["orders"]);
    // The reference service's DatabaseMigrationState field names, exactly.
    assert.deepEqual(Object.keys(status.currentSubStateDetails.dbDetails.orders).sort(), [
      "appliedChanges",
      "cdcDeleteCounter",
      "cdcInsertCounter",
      "cdcUpdateCounter",
      "databaseName",
      "endedOn",
      "fullLoadCompletedTables",
      "fullLoadErroredTables",
      "fullLoadLoadingTables",
      "fullLoadQueuedTables",
      "incomingChanges",
      "latency",
      "message",
      "migrationOperation",
      "migrationState",
      "startedOn",
    ]);
    const orders = status.currentSubStateDetails.dbDetails.orders;
    assert.equal(orders.latency, 0.25);
    assert.equal(orders.appliedChanges, 13);
    const validation = status.currentSubStateDetails.validationDetails;
    assert.equal(validation?.status, "Warning");
    assert.deepEqual(validation?.dbLevelValidationDetails[0].summary[0].messages, [
      { state: "Warning", message: "role app missing" },
    ]);
    // No error: an empty string, as the reference service prints.
    assert.equal(azureMigration(outputs({}), "pg:5432").properties.currentStatus.error, "");
  });
});
