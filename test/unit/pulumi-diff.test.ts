// The provider's `diff` on a table of (state, new inputs) pairs: cutover, passwords, parallelism
// and runtime change in place; what defines the migration replaces it, old one first.
import assert from "node:assert/strict";
import { resolveSpec } from "../../provider/spec/inputs";
import { planChange } from "../../provider/pulumi/diff";
import {
  fingerprint,
  resourceState,
  UNKNOWN,
  type ResourceState,
} from "../../provider/pulumi/state";
import type { MigrationOutputs } from "../../provider/spec/types";

type Inputs = Record<string, unknown>;

const online: Inputs = {
  source: { host: "old-db.internal", username: "postgres", password: "s1" },
  target: { host: "new-db.internal", username: "pgadmin", password: "t1", sslMode: "require" },
  databases: ["orders", "billing"],
  mode: "Online",
  migrationName: "orders",
};

const waiting: MigrationOutputs = {
  migrationName: "orders",
  state: "WaitingForUserAction",
  substate: "WaitingForCutoverTrigger",
  migrationMode: "Online",
  migrationOption: "ValidateAndMigrate",
  latencySeconds: 0.2,
  startedOn: "2025-01-01T00:00:00.000Z",
  endedOn: null,
  error: null,
  validation: null,
  dbDetails: {},
  verification: null,
  cutoverLsn: null,
  events: [],
  warnings: [],
  workerLog: null,
  runtimes: [],
};

/** The state a create with `inputs` leaves behind. */
function stateAfterCreate(inputs: Inputs): ResourceState {
  const resolved = resolveSpec(inputs);
  assert.ok(resolved.ok);
  return resourceState(resolved.spec, resolved.runtime, waiting, fingerprint(resolved.spec));
}

const endpoint = (key: "source" | "target", patch: Inputs): Inputs => ({
  ...(online[key] as Inputs),
  ...patch,
});

interface Case {
  readonly name: string;
  readonly news: Inputs;
  /** Inputs of the previous create/update; default `online`. */
  readonly olds?: Inputs;
  readonly changes: boolean;
  readonly replaces?: readonly string[];
  readonly cutover?: boolean;
  readonly passwords?: { source: boolean; target: boolean };
}

const cases: readonly Case[] = [
  { name: "nothing changed", news: online, changes: false },
  {
    name: "nothing changed, __provider differs",
    news: { ...online, __provider: "new text" },
    changes: false,
  },
  {
    name: "databases listed in another order",
    news: { ...online, databases: ["billing", "orders"] },
    changes: false,
  },
  {
    name: "defaults written out",
    news: {
      ...online,
      option: "ValidateAndMigrate",
      verify: "snapshot",
      controlDatabase: "postgres",
    },
    changes: false,
  },
  {
    name: "created when counts was the default verify, verify still unset",
    olds: { ...online, verify: "counts" },
    news: online,
    changes: false,
  },
  {
    name: "verify set explicitly",
    news: { ...online, verify: "checksum" },
    changes: true,
    replaces: ["verify"],
  },
  {
    name: "cutover false → true",
    news: { ...online, cutover: true },
    changes: true,
    cutover: true,
  },
  {
    name: "source password rotated",
    news: { ...online, source: endpoint("source", { password: "s2" }) },
    changes: true,
    passwords: { source: true, target: false },
  },
  {
    name: "target password rotated",
    news: { ...online, target: endpoint("target", { password: "t2" }) },
    changes: true,
    passwords: { source: false, target: true },
  },
  { name: "parallelism raised", news: { ...online, parallelism: { tables: 8 } }, changes: true },
  {
    name: "worker moved to an external runtime",
    news: { ...online, runtime: { kind: "external" } },
    changes: true,
  },
  {
    name: "source host",
    news: { ...online, source: endpoint("source", { host: "other" }) },
    changes: true,
    replaces: ["source"],
  },
  {
    name: "target port",
    news: { ...online, target: endpoint("target", { port: 6432 }) },
    changes: true,
    replaces: ["target"],
  },
  {
    name: "target sslMode",
    news: { ...online, target: endpoint("target", { sslMode: "verify-full" }) },
    changes: true,
    replaces: ["target"],
  },
  {
    name: "source host and password",
    news: { ...online, source: endpoint("source", { host: "other", password: "s2" }) },
    changes: true,
    replaces: ["source"],
    passwords: { source: true, target: false },
  },
  {
    name: "a database added",
    news: { ...online, databases: ["orders", "billing", "audit"] },
    changes: true,
    replaces: ["databases"],
  },
  { name: "mode", news: { ...online, mode: "Offline" }, changes: true, replaces: ["mode"] },
  { name: "option", news: { ...online, option: "Migrate" }, changes: true, replaces: ["option"] },
  {
    name: "migration name",
    news: { ...online, migrationName: "orders-2" },
    changes: true,
    replaces: ["migrationName"],
  },
  {
    name: "control database",
    news: { ...online, controlDatabase: "pgmigrate" },
    changes: true,
    replaces: ["controlDatabase"],
  },
  {
    name: "overwrite flag",
    news: { ...online, overwriteDbsInTarget: true },
    changes: true,
    replaces: ["overwriteDbsInTarget"],
  },
  {
    name: "verification",
    news: { ...online, verify: "checksum" },
    changes: true,
    replaces: ["verify"],
  },
  {
    name: "mode and databases together",
    news: { ...online, mode: "Offline", databases: ["orders"] },
    changes: true,
    replaces: ["databases", "mode"],
  },
  // Preview with values that depend on other resources.
  {
    name: "unknown target host",
    news: { ...online, target: endpoint("target", { host: UNKNOWN }) },
    changes: true,
    replaces: ["target"],
  },
  {
    name: "unknown target",
    news: { ...online, target: UNKNOWN },
    changes: true,
    replaces: ["target"],
    passwords: { source: false, target: true },
  },
  {
    name: "unknown source password",
    news: { ...online, source: endpoint("source", { password: UNKNOWN }) },
    changes: true,
    passwords: { source: true, target: false },
  },
  { name: "unknown cutover", news: { ...online, cutover: UNKNOWN }, changes: true, cutover: false },
  {
    name: "unknown databases",
    news: { ...online, databases: UNKNOWN },
    changes: true,
    replaces: ["databases"],
  },
];

describe("provider diff", () => {
  for (const c of cases) {
    it(c.name, () => {
      const plan = planChange(stateAfterCreate(c.olds ?? online), c.news);
      assert.equal(plan.result.changes, c.changes);
      assert.deepEqual([...(plan.result.replaces ?? [])].sort(), [...(c.replaces ?? [])].sort());
      assert.equal(plan.result.deleteBeforeReplace, (c.replaces ?? []).length > 0);
      assert.equal(plan.cutoverRequested, c.cutover ?? false);
      assert.deepEqual(plan.passwordsChanged, c.passwords ?? { source: false, target: false });
    });
  }

  it("rejects cutover true → false", () => {
    const state = stateAfterCreate({ ...online, cutover: true });
    assert.throws(
      () => planChange(state, { ...online, cutover: false }),
      /cutover cannot be undone \(true → false\): keep cutover: true/,
    );
  });

  it("rejects cutover on an offline migration", () => {
    const offline = { ...online, mode: "Offline" };
    assert.throws(
      () => planChange(stateAfterCreate(offline), { ...offline, cutover: true }),
      /cutover applies to Online migrations only/,
    );
  });

  it("keeps no password in the state, only salted fingerprints", () => {
    const state = stateAfterCreate(online);
    const text = JSON.stringify(state);
    assert.ok(!text.includes('"s1"') && !text.includes('"t1"'), text);
    assert.equal(state.passwordFingerprint.salt.length, 32);
    assert.notEqual(state.passwordFingerprint.source, state.passwordFingerprint.target);
    // The same password under another salt gives another fingerprint.
    const again = stateAfterCreate(online);
    assert.notEqual(again.passwordFingerprint.source, state.passwordFingerprint.source);
  });

  it("rejects a state it did not write", () => {
    assert.throws(
      () => planChange({ id: "x" }, online),
      /not written by the pulumi-postgres-migration provider/,
    );
  });
});
