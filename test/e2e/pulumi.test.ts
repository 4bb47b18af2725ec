// End to end through a real Pulumi CLI: a user's project installs this package from its npm
// tarball and runs `pulumi preview / up / refresh / destroy` against two local servers.
// The CLI comes from scripts/pulumi-cli.sh (or PATH); without one the suite is skipped, unless
// PGMIGRATE_E2E_REQUIRED=1 (CI) makes that a failure.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { compareDatabases } from "../support/checksum";
import { loadFixture, writeWorkload } from "../support/fixture";
import { count, ourSourceObjects } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import {
  changedInputs,
  killTree,
  PulumiProject,
  pulumiCliDir,
  workerPids,
  type Stack,
} from "../support/pulumi";
import type { MigrationOutputs } from "../../provider/spec/types";

const DB = "orders";

/** A diagnostic event of `pulumi --event-log`. */
interface Diagnostic {
  readonly urn?: string;
  readonly message: string;
  readonly severity: string;
}

describe("pulumi CLI end to end", function () {
  this.timeout(300_000);
  let project: PulumiProject;
  let source: PgServer;
  let target: PgServer;
  const names: string[] = [];

  before(async function () {
    const cliDir = pulumiCliDir();
    if (!cliDir) {
      if (process.env.PGMIGRATE_E2E_REQUIRED === "1") {
        throw new Error("no Pulumi CLI: run scripts/pulumi-cli.sh (PGMIGRATE_E2E_REQUIRED=1)");
      }
      console.log("    (no Pulumi CLI: run scripts/pulumi-cli.sh to build one; skipping)");
      this.skip();
    }
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    await loadFixture(source, DB, { rows: 300 });
    project = PulumiProject.create(cliDir);
  });

  after(async () => {
    for (const name of names) {
      for (const pid of workerPids(name)) process.kill(pid, "SIGKILL");
    }
    project?.remove();
    await Promise.all([source?.stop(), target?.stop()]);
  });

  /** A stack (and migration) name unique to this run. */
  function uniqueName(prefix: string): string {
    const name = `${prefix}-${Date.now().toString(36)}`;
    names.push(name);
    return name;
  }

  /** A new stack with an Online migration of DB (into a fresh target database). */
  async function onlineStack(
    prefix: string,
    login?: { username: string; password: string },
  ): Promise<{ name: string; stack: Stack }> {
    const name = uniqueName(prefix);
    const config = {
      resourceName: name,
      databases: [DB],
      mode: "Online",
      overwriteDbsInTarget: true,
    };
    return { name, stack: await project.initStack(name, source, target, config, login) };
  }

  async function migrationRow(name: string): Promise<string | undefined> {
    // Before the first migration there is no control schema: no row either.
    const [{ exists }] = await target.query<{ exists: boolean }>(
      "SELECT to_regclass('pgmigrate.migrations') IS NOT NULL AS exists",
    );
    if (!exists) return undefined;
    const rows = await target.query<{ state: string }>(
      "SELECT state FROM pgmigrate.migrations WHERE name = $1",
      [name],
    );
    return rows[0]?.state;
  }

  /**
   * Runs `pulumi <args> --json` (up and refresh stream their engine events as JSON lines) and
   * returns its output and the diagnostics the provider sent for migration `name`, each with the
   * URN the engine attached it to.
   */
  async function withDiagnostics(
    stack: Stack,
    name: string,
    args: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string; diagnostics: Diagnostic[] }> {
    const result = await stack.run([...args, "--json"]);
    const diagnostics = result.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => (JSON.parse(line) as { diagnosticEvent?: Diagnostic }).diagnosticEvent)
      .filter((d): d is Diagnostic => d !== undefined && d.message.includes(`pgmigrate ${name}:`));
    return { ...result, diagnostics };
  }

  /** The URN Pulumi gives the migration resource `name` of `stack` (no parent). */
  const resourceUrn = (stack: Stack, name: string): string =>
    `urn:pulumi:${stack.name}::e2e::pulumi-nodejs:dynamic/pgmigrate:PostgresMigration::${name}`;

  async function assertNoSecretLeaked(stack: Stack, ...texts: string[]): Promise<void> {
    const state = await stack.exportState();
    const logs = project.workerLogs();
    assert.ok(logs.length > 0, "the workers logged into the project's log folder");
    for (const text of [state, ...logs, ...texts]) {
      for (const secret of project.secrets) assert.ok(!text.includes(secret), "a password leaked");
    }
  }

  describe("online: up, refresh, preview of the cutover, up, destroy", () => {
    let stack: Stack;
    let name: string;

    it("rejects bad input in preview, on the exact property", async () => {
      name = uniqueName("online");
      stack = await project.initStack(name, source, target, {
        resourceName: name,
        databases: [DB],
        mode: "Online",
        migrationName: "Not_A_Valid_Name",
      });
      const preview = await stack.run(["preview"]);
      assert.notEqual(preview.code, 0, "preview must fail");
      const text = preview.stdout + preview.stderr;
      assert.match(text, /migrationName/);
      assert.match(text, /lowercase letters, digits and hyphens/);
      await stack.ok(["config", "rm", "migrationName"]);
      // Valid inputs and known servers: the preview runs the premigration checks against them
      // and shows what up would find (the fixture's user-defined cast is not migrated).
      const checked = await stack.run(["preview"]);
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      assert.match(
        checked.stdout,
        new RegExp(
          `pgmigrate ${name}: premigration checks found warnings: database "${DB}" UnsupportedObjects Warning: user-defined casts are not migrated`,
        ),
      );
      assert.equal(await migrationRow(name), undefined, "preview created nothing");
    });

    it("pulumi up copies and stops at WaitingForUserAction with latency in the outputs", async () => {
      const up = await withDiagnostics(stack, name, ["up", "--yes", "--skip-preview"]);
      assert.equal(up.code, 0, up.stdout + up.stderr);
      assert.match(up.stdout, /WaitingForUserAction\/WaitingForCutoverTrigger/);
      // The provider's diagnostics belong to the migration resource, not to the stack: the
      // premigration checks' warnings (check), then the migration's progress.
      assert.ok(up.diagnostics.length >= 2, JSON.stringify(up.diagnostics));
      assert.deepEqual([...new Set(up.diagnostics.map((d) => d.urn))], [resourceUrn(stack, name)]);
      const progress = up.diagnostics.filter((d) => d.severity === "info");
      assert.ok(
        up.diagnostics
          .filter((d) => d.severity !== "info")
          .every(
            (d) => d.severity === "warning" && /premigration checks found warnings/.test(d.message),
          ),
        JSON.stringify(up.diagnostics),
      );
      assert.match(progress[0].message, /started Online migration/);
      assert.match(
        progress[progress.length - 1].message,
        /WaitingForUserAction\/WaitingForCutoverTrigger, tables \d+\/\d+ done/,
      );
      const out = await stack.outputs();
      assert.equal(out.migrationName, name);
      assert.equal(out.state, "WaitingForUserAction");
      assert.equal(out.substate, "WaitingForCutoverTrigger");
      assert.equal(out.migrationMode, "Online");
      assert.equal(typeof out.latencySeconds, "number", "a latency from the first moment");
      const details = (out.dbDetails as MigrationOutputs["dbDetails"])[DB];
      assert.equal(details.fullLoadErroredTables, 0);
      assert.ok(details.fullLoadCompletedTables > 0);
      assert.equal(await migrationRow(name), "WaitingForUserAction");
      assert.equal(workerPids(name).length, 1, "one detached worker keeps replicating");
      // The package's command line works where the package is installed (npx pgmigrate).
      const shown = await project.bin(
        "pgmigrate",
        ["show", "--server", target.url("postgres"), "--migration-name", name, "--json"],
        { PGPASSWORD: target.password },
      );
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal((JSON.parse(shown.stdout) as MigrationOutputs).state, "WaitingForUserAction");
      await assertNoSecretLeaked(stack, up.stdout, up.stderr, JSON.stringify(out));
    });

    it("pulumi refresh shows the replicated changes and the latency", async () => {
      const counts = await writeWorkload(source, DB, { transactions: 40 });
      assert.ok(counts.inserts > 0 && counts.updates > 0 && counts.deletes > 0);
      // The worker applies in the background; refresh reads the control store.
      let last: Record<string, unknown> = {};
      const out = await until(
        async () => {
          const refreshed = await withDiagnostics(stack, name, [
            "refresh",
            "--yes",
            "--skip-preview",
          ]);
          assert.equal(refreshed.code, 0, refreshed.stdout + refreshed.stderr);
          assert.deepEqual(
            refreshed.diagnostics.map((d) => d.urn),
            [resourceUrn(stack, name)],
            "refresh's one status line, on the resource",
          );
          // The refresh itself tells the live status (the stack outputs change only at up).
          assert.match(
            refreshed.diagnostics[0].message,
            /WaitingForUserAction\/WaitingForCutoverTrigger, tables \d+\/\d+ done, [\d,]+ changes applied, latency/,
          );
          last = await stack.resourceOutputs();
          const d = (last.dbDetails as MigrationOutputs["dbDetails"])[DB];
          const applied = d.cdcInsertCounter >= counts.inserts && d.cdcDeleteCounter > 0;
          return applied && last.latencySeconds !== null ? last : undefined;
        },
        { what: "refresh to show the applied changes", timeoutMs: 90_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}; wrote ${JSON.stringify(counts)}; ${JSON.stringify(last)}`);
      });
      assert.equal(out.state, "WaitingForUserAction");
      assert.equal(typeof out.latencySeconds, "number");
      assert.ok((out.latencySeconds as number) < 60, `latency ${String(out.latencySeconds)}`);
      // Refresh writes what the migration reports into the state: once the last changes are
      // applied, the state after a refresh and `pgmigrate show --json` agree on every counter.
      const counters = (o: Pick<MigrationOutputs, "state" | "substate" | "dbDetails">) => {
        const d = o.dbDetails[DB];
        return {
          state: o.state,
          substate: o.substate,
          migrationState: d.migrationState,
          fullLoadCompletedTables: d.fullLoadCompletedTables,
          cdcInsertCounter: d.cdcInsertCounter,
          cdcUpdateCounter: d.cdcUpdateCounter,
          cdcDeleteCounter: d.cdcDeleteCounter,
          appliedChanges: d.appliedChanges,
          incomingChanges: d.incomingChanges,
        };
      };
      let compared = "";
      await until(
        async () => {
          const refreshed = await stack.run(["refresh", "--yes", "--skip-preview"]);
          assert.equal(refreshed.code, 0, refreshed.stdout + refreshed.stderr);
          const inState = counters((await stack.resourceOutputs()) as unknown as MigrationOutputs);
          const shown = await project.bin(
            "pgmigrate",
            ["show", "--server", target.url("postgres"), "--migration-name", name, "--json"],
            { PGPASSWORD: target.password },
          );
          assert.equal(shown.code, 0, shown.stderr);
          const live = counters(JSON.parse(shown.stdout) as MigrationOutputs);
          compared = `state ${JSON.stringify(inState)} vs show ${JSON.stringify(live)}`;
          return JSON.stringify(inState) === JSON.stringify(live);
        },
        { what: "the refreshed state to match pgmigrate show", timeoutMs: 60_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${compared}`);
      });
    });

    it("a change of databases previews as a replacement", async () => {
      await stack.set("databases", [DB, "postgres"]);
      const replace = await stack.previewSteps();
      assert.equal(replace.length, 1);
      assert.equal(replace[0].op, "replace");
      assert.deepEqual(replace[0].replaceReasons, ["databases"]);
      await stack.set("databases", [DB]);
      const unchanged = await stack.previewSteps();
      assert.deepEqual(
        unchanged.filter((s) => s.op !== "same"),
        [],
      );
    });

    it("preview of cutover: true shows only that change, and the live latency", async () => {
      await stack.set("cutover", true);
      const steps = await stack.previewSteps();
      assert.equal(steps.length, 1);
      assert.equal(steps[0].op, "update");
      assert.deepEqual(changedInputs(steps[0]), ["cutover"]);
      const text = await stack.ok(["preview", "--diff"]);
      assert.match(text, /~ cutover\s*: false => true/);
      // The plain preview shows the provider's diagnostics: the live latency and a verdict.
      const plain = await stack.ok(["preview"]);
      // ... under the migration resource, not the stack.
      assert.match(
        plain,
        new RegExp(
          `Diagnostics:[\\s\\S]*\\n\\s+pulumi-nodejs:dynamic/pgmigrate:PostgresMigration \\(${name}\\):\\n\\s+pgmigrate ${name}: cutover requested`,
        ),
      );
      assert.match(
        plain,
        /cutover requested; now WaitingForUserAction\/WaitingForCutoverTrigger, latency \d/,
      );
      assert.match(plain, /the target has caught up|wait until latency is ~0/);
      // Preview changed nothing.
      assert.equal(await migrationRow(name), "WaitingForUserAction");
    });

    it("pulumi up with cutover: true drains, succeeds and leaves identical data", async () => {
      await writeWorkload(source, DB, { transactions: 20 });
      const up = await stack.up();
      assert.equal(up.code, 0, up.stdout + up.stderr);
      const out = await stack.outputs();
      assert.equal(out.state, "Succeeded");
      assert.equal(out.substate, "Completed");
      const verification = out.verification as MigrationOutputs["verification"];
      assert.equal(verification?.status, "Succeeded");
      assert.ok(verification?.tables.every((t) => t.match));
      const comparison = await compareDatabases(source, DB, target, DB);
      assert.deepEqual(comparison.differences, []);
      assert.deepEqual(await ourSourceObjects(source, DB), []);
      await until(() => workerPids(name).length === 0, { what: "the worker to exit" });
      await assertNoSecretLeaked(stack, up.stdout, up.stderr);
      // Settled: refreshing changes nothing and the next preview has nothing to do.
      const refreshed = await stack.run(["refresh", "--yes", "--skip-preview"]);
      assert.equal(refreshed.code, 0, refreshed.stdout + refreshed.stderr);
      assert.equal((await stack.resourceOutputs()).state, "Succeeded");
      const steps = await stack.previewSteps();
      assert.deepEqual(
        steps.filter((s) => s.op !== "same"),
        [],
      );
    });

    it("pulumi destroy of a Succeeded migration forgets it and keeps the data", async () => {
      const rows = await count(target, DB, "SELECT count(*) AS n FROM public.customers");
      const destroyed = await stack.run(["destroy", "--yes", "--skip-preview"]);
      assert.equal(destroyed.code, 0, destroyed.stdout + destroyed.stderr);
      assert.equal(await migrationRow(name), undefined);
      assert.equal(await count(target, DB, "SELECT count(*) AS n FROM public.customers"), rows);
      await stack.ok(["stack", "rm", "--yes"]);
    });
  });

  describe("an interrupted pulumi up", () => {
    it("re-run, attaches to the running migration instead of starting over", async () => {
      const { name, stack } = await onlineStack("attach");
      // A lock on the source holds the copy (pg_dump waits for it) while pulumi is killed.
      const locker = await source.connect(DB);
      let first: ChildProcess | undefined;
      let exited: Promise<unknown> = Promise.resolve();
      const killFirst = async (): Promise<void> => {
        if (first?.exitCode === null && first.signalCode === null) {
          killTree(first.pid as number, workerPids(name)); // pulumi and its plugins
        }
        await exited;
      };
      try {
        await locker.query("BEGIN; LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE");
        first = stack.startUp();
        exited = new Promise((resolve) => first?.on("close", resolve));
        const startedOn = await until(
          async () => {
            const rows = await target
              .query<{ substate: string; started_on: Date }>(
                "SELECT substate, started_on FROM pgmigrate.migrations WHERE name = $1",
                [name],
              )
              .catch(() => []); // the control store may not exist yet
            return rows[0]?.substate === "MigratingData" ? rows[0].started_on : undefined;
          },
          { what: "the copy to start" },
        );
        await killFirst(); // mid-create
        assert.equal(workerPids(name).length, 1, "the detached worker outlives pulumi");
        await locker.query("COMMIT");

        // What a user does after a killed pulumi: release its lock on the stack, run up again.
        await stack.ok(["cancel", "--yes"]);
        const again = await stack.up();
        assert.equal(again.code, 0, again.stdout + again.stderr);
        assert.match(again.stdout, /attached to the migration already running/);
        const out = await stack.outputs();
        assert.equal(out.state, "WaitingForUserAction");
        const [row] = await target.query<{ started_on: Date }>(
          "SELECT started_on FROM pgmigrate.migrations WHERE name = $1",
          [name],
        );
        assert.equal(row.started_on.getTime(), startedOn.getTime(), "the same migration");
        const slots = await source.query(
          "SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate%'",
        );
        assert.equal(slots.length, 1, "one slot: the copy was not started twice");
      } finally {
        await killFirst();
        await locker.end().catch(() => undefined);
        // Rolls the migration back whatever happened above, so later tests start clean.
        await stack.run(["cancel", "--yes"]);
        const destroyed = await stack.run(["destroy", "--yes", "--skip-preview"]);
        if (destroyed.code !== 0) console.error(destroyed.stdout + destroyed.stderr);
      }
      assert.deepEqual(await ourSourceObjects(source, DB), []);
      await stack.ok(["stack", "rm", "--yes"]);
    });
  });

  describe("password rotation", () => {
    it("pulumi up with new passwords restarts the worker, which carries on replicating", async () => {
      const login = { username: "migrator", password: `old-${Date.now().toString(36)}-pw` };
      for (const server of [source, target]) {
        await server.query(`CREATE ROLE migrator LOGIN SUPERUSER PASSWORD '${login.password}'`);
      }
      const { name, stack } = await onlineStack("rotate", login);
      try {
        const up = await stack.up();
        assert.equal(up.code, 0, up.stdout + up.stderr);
        const [before] = workerPids(name);
        assert.ok(before, "a worker runs");

        const rotated = `new-${name}-pw`;
        for (const server of [source, target]) {
          await server.query(`ALTER ROLE migrator PASSWORD '${rotated}'`);
        }
        await stack.setSecret("sourcePassword", rotated);
        await stack.setSecret("targetPassword", rotated);
        const steps = await stack.previewSteps();
        assert.deepEqual(
          steps.map((s) => s.op),
          ["update"],
          "a rotation is an in-place update",
        );
        const update = await stack.up();
        assert.equal(update.code, 0, update.stdout + update.stderr);
        const after = await until(
          async () => {
            const pids = workerPids(name);
            return pids.length === 1 && pids[0] !== before ? pids[0] : undefined;
          },
          { what: "a new worker" },
        );
        assert.notEqual(after, before);

        // The new worker replicates with the new passwords, through to the cutover.
        const counts = await writeWorkload(source, DB, { transactions: 10 });
        assert.ok(counts.transactions === 10);
        await stack.set("cutover", true);
        const cut = await stack.up();
        assert.equal(cut.code, 0, cut.stdout + cut.stderr);
        assert.equal((await stack.outputs()).state, "Succeeded");
        assert.deepEqual((await compareDatabases(source, DB, target, DB)).differences, []);
        await assertNoSecretLeaked(stack, update.stdout, update.stderr, cut.stdout, cut.stderr);
      } finally {
        const destroyed = await stack.run(["destroy", "--yes", "--skip-preview"]);
        if (destroyed.code !== 0) console.error(destroyed.stdout + destroyed.stderr);
        await until(() => workerPids(name).length === 0, { what: "no worker" });
        for (const server of [source, target]) {
          // What migrator created (the target database, the control schema) stays, owned by postgres.
          const dbs = await server.query<{ datname: string }>(
            "SELECT datname FROM pg_database WHERE datname IN ('postgres', $1)",
            [DB],
          );
          for (const { datname } of dbs) {
            await server.query("REASSIGN OWNED BY migrator TO postgres", [], datname);
          }
          await server.query("DROP ROLE migrator");
        }
      }
      assert.deepEqual(await ourSourceObjects(source, DB), []);
      await stack.ok(["stack", "rm", "--yes"]);
    });
  });

  describe("destroy before the cutover", () => {
    it("cancels, drops the target database and leaves nothing on the source", async () => {
      const { name, stack } = await onlineStack("cancel");
      await target.query(`DROP DATABASE IF EXISTS ${DB}`);
      const up = await stack.up();
      assert.equal(up.code, 0, up.stdout + up.stderr);
      assert.equal((await stack.outputs()).state, "WaitingForUserAction");
      assert.ok((await ourSourceObjects(source, DB)).length > 0, "slot and publication exist");
      const destroyed = await stack.run(["destroy", "--yes", "--skip-preview"]);
      assert.equal(destroyed.code, 0, destroyed.stdout + destroyed.stderr);
      assert.match(destroyed.stdout, /removed \(Canceled\)/);
      // Announced before it happened, naming the database.
      assert.match(
        destroyed.stdout,
        new RegExp(
          `pgmigrate ${name}: destroy before the cutover: canceling rolls the target back: dropping the target database ${DB} on `,
        ),
      );
      assert.deepEqual(await ourSourceObjects(source, DB), []);
      const dbs = await target.query("SELECT 1 FROM pg_database WHERE datname = $1", [DB]);
      assert.equal(dbs.length, 0, "the target database this migration created is dropped");
      assert.equal(await migrationRow(name), undefined);
      await until(() => workerPids(name).length === 0, { what: "no worker" });
      await stack.ok(["stack", "rm", "--yes"]);
    });
  });

  describe("offline", () => {
    it("pulumi up copies once and ends Succeeded; a failing one fails the update", async () => {
      const name = uniqueName("offline");
      const stack = await project.initStack(name, source, target, {
        resourceName: name,
        databases: [DB],
        overwriteDbsInTarget: true,
        verify: "checksum",
      });
      const up = await stack.up();
      assert.equal(up.code, 0, up.stdout + up.stderr);
      const out = await stack.outputs();
      assert.equal(out.state, "Succeeded");
      assert.equal(out.migrationMode, "Offline");
      assert.deepEqual((await compareDatabases(source, DB, target, DB)).differences, []);
      assert.equal(workerPids(name).length, 0);

      // A database missing on the source: validation fails, the update fails and says why.
      await stack.set("databases", ["no_such_db"]);
      const failed = await stack.up();
      assert.notEqual(failed.code, 0);
      assert.match(failed.stdout + failed.stderr, /ValidationFailed/);
      assert.match(failed.stdout + failed.stderr, /no_such_db/);
      assert.deepEqual(await ourSourceObjects(source, DB), []);
      const destroyed = await stack.run(["destroy", "--yes", "--skip-preview"]);
      assert.equal(destroyed.code, 0, destroyed.stdout + destroyed.stderr);
      await stack.ok(["stack", "rm", "--yes"]);
    });
  });
});
