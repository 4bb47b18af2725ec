// What each Pulumi operation asks of the engine. Loaded by the dynamic-provider host on first
// use through the package entry (never by the SDK, never captured in the serialized provider).
import type * as pulumi from "@pulumi/pulumi";
import * as engine from "../api/index";
import { latency, statusLine } from "../api/report";
import { resolveSpec } from "../spec/inputs";
import { MigrationError } from "../pg/errors";
import { redact } from "../pg/redact";
import { checkMigration } from "./check";
import { planChange } from "./diff";
import { previewChecks } from "./preview";
import {
  diagnostics,
  failureReport,
  progressPrinter,
  warningPrinter,
  type ProviderLog,
} from "./diagnostics";
import {
  asResourceState,
  fingerprint,
  resolveCredentials,
  resourceState,
  specFromState,
  userInputs,
  type Credentials,
  type ResourceState,
} from "./state";
import type { MigrationOutputs, MigrationSpec, RuntimeOptions } from "../spec/types";

type Inputs = Record<string, unknown>;

/** The provider's operations; read and delete also take the passwords the provider remembers. */
export interface ProviderImplementation {
  check(olds: Inputs, news: Inputs): Promise<pulumi.dynamic.CheckResult<Inputs>>;
  diff(id: string, olds: object, news: Inputs): Promise<pulumi.dynamic.DiffResult>;
  create(inputs: Inputs): Promise<pulumi.dynamic.CreateResult<ResourceState>>;
  /** The live state; the props as given when they are not a migration's (Pulumi keeps them). */
  read(
    id: string,
    props: object,
    remembered?: Credentials,
  ): Promise<pulumi.dynamic.ReadResult<object>>;
  update(
    id: string,
    olds: object,
    news: Inputs,
  ): Promise<pulumi.dynamic.UpdateResult<ResourceState>>;
  /** Resolves to the migration's last outputs before it was forgotten (undefined if gone). */
  delete(
    id: string,
    props: object,
    remembered?: Credentials,
  ): Promise<MigrationOutputs | undefined>;
}

/** End states after which a create has failed. */
const UNSUCCESSFUL = ["Failed", "ValidationFailed", "Canceled"];
/** Below this latency the target has caught up with the source's writes. */
export const DRAINED_LATENCY_SECONDS = 2;

function resolved(news: Inputs): { spec: MigrationSpec; runtime: RuntimeOptions } {
  const result = resolveSpec(userInputs(news));
  if (!result.ok) {
    const problems = result.problems.map((p) => `${p.property}: ${p.reason}`).join("; ");
    throw new MigrationError("input", `invalid inputs: ${problems}`, { code: "PGM_INPUT" });
  }
  return { spec: result.spec, runtime: result.runtime };
}

// Whatever fails, its message reaches the Pulumi CLI without a password in it.
async function guarded<T>(spec: MigrationSpec | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof Error) || !spec) throw err;
    err.message = redact(err.message, [spec.source.password, spec.target.password]);
    throw err;
  }
}

/** Tells, while previewing a cutover, whether the application's writes have drained. */
async function reportCutoverReadiness(spec: MigrationSpec, log: ProviderLog): Promise<void> {
  const name = spec.migrationName;
  const live = await Promise.race([
    engine.getMigration(engine.controlLocation(spec), name),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref()),
  ]).catch((err: unknown) => {
    log.warn(`pgmigrate ${name}: cannot read the live latency: ${(err as Error).message}`);
    return undefined;
  });
  if (!live) return;
  // incomingChanges is the backlog: received from the source, not applied yet.
  const pending = Object.values(live.dbDetails).reduce((n, d) => n + d.incomingChanges, 0);
  const now = `now ${live.state}/${live.substate}, ${latency(live.latencySeconds)}, ${pending} changes pending`;
  let verdict: string;
  if (engine.isEnded(live.state)) {
    verdict = `the migration has ended (${live.state}): a cutover is no longer possible`;
  } else if (live.state !== "WaitingForUserAction") {
    verdict = "the cutover will run as soon as the initial copy completes";
  } else if (live.latencySeconds === null) {
    verdict =
      pending === 0
        ? "no change is waiting to be applied"
        : "changes are waiting to be applied: wait until latency is ~0";
  } else if (live.latencySeconds <= DRAINED_LATENCY_SECONDS && pending === 0) {
    verdict = "the target has caught up: the cutover should take seconds";
  } else {
    verdict =
      "the target is behind the source: stop the application's writes and wait until latency is ~0";
  }
  log.info(`pgmigrate ${name}: cutover requested; ${now}; ${verdict}`);
}

/** Tunables of the provider (tests shorten them). */
export interface ProviderOptions {
  /** Longest the preview of a new migration waits for the premigration checks. */
  readonly previewTimeoutMs?: number;
}

/** Builds the provider's operations; `log` receives the diagnostics. */
export function providerImplementation(
  log: ProviderLog = diagnostics,
  options: ProviderOptions = {},
): ProviderImplementation {
  /** Waits until the migration needs the user or ended; with `cutover: true`, cuts over. */
  async function settle(spec: MigrationSpec, runtime: RuntimeOptions): Promise<MigrationOutputs> {
    const name = spec.migrationName;
    const at = engine.controlLocation(spec);
    const onProgress = progressPrinter(log, name);
    let outputs = await engine.waitForMigration(at, name, engine.isSettled, {
      onProgress,
      spec,
      runtime,
    });
    if (spec.cutover && spec.mode === "Online" && !engine.isEnded(outputs.state)) {
      log.info(`pgmigrate ${name}: cutover: applying the last changes and syncing sequences`);
      await engine.requestAction(at, name, "cutover");
      outputs = await engine.waitForMigration(at, name, (o) => engine.isEnded(o.state), {
        onProgress,
        spec,
        runtime,
      });
    }
    return outputs;
  }

  return {
    async check(olds, news) {
      const result = checkMigration(olds, news);
      // A new migration whose servers are known: what `pulumi up` would find, said now.
      if ((result.failures ?? []).length === 0) {
        await previewChecks(olds, news, log, options.previewTimeoutMs);
      }
      return result;
    },

    async diff(_id, olds, news) {
      const plan = planChange(olds, news);
      if (plan.cutoverRequested && plan.spec.target.password !== undefined) {
        await reportCutoverReadiness(plan.spec, log);
      }
      return plan.result;
    },

    async create(inputs) {
      const { spec, runtime } = resolved(inputs);
      return guarded(spec, async () => {
        const name = spec.migrationName;
        // Say what will be dropped before it is (not when attaching to a running migration).
        if (
          spec.overwriteDbsInTarget &&
          !(await engine.getMigration(engine.controlLocation(spec), name))
        ) {
          const announcement = await engine.overwriteAnnouncement(spec);
          if (announcement) log.warn(`pgmigrate ${name}: ${announcement}`);
        }
        const { attached } = await engine.createMigration(spec, runtime);
        log.info(
          attached
            ? `pgmigrate ${name}: attached to the migration already running (an earlier update was interrupted)`
            : `pgmigrate ${name}: started ${spec.mode} migration (${spec.option}) of ${spec.databases.join(", ")}`,
        );
        const outputs = await settle(spec, runtime);
        if (UNSUCCESSFUL.includes(outputs.state)) {
          // Forget it so that the next `pulumi up` can start again under the same name.
          await engine.forgetMigration(engine.controlLocation(spec), name);
          const leftovers =
            outputs.state === "Failed"
              ? "\nNo replication slot was left on the source. Target databases this attempt created " +
                "were kept for inspection: drop them, or set overwriteDbsInTarget: true, before retrying."
              : "\nNothing was left on the source or the target.";
          throw new MigrationError("control", failureReport(outputs) + leftovers, {
            code: "PGM_FAILED",
          });
        }
        return { id: name, outs: resourceState(spec, runtime, outputs, fingerprint(spec)) };
      });
    },

    async read(id, props, remembered) {
      const state = asResourceState(props);
      if (!state) return { id, props };
      const spec = specFromState(state, resolveCredentials(remembered));
      return guarded(spec, async () => {
        const name = spec.migrationName;
        const live = await engine.getMigration(engine.controlLocation(spec), name);
        if (!live) return {}; // gone: Pulumi drops it from the state
        // `pulumi refresh` shows this line: stack outputs change only at `up`.
        log.info(`pgmigrate ${name}: ${statusLine(live)}`);
        warningPrinter(log, name)(live);
        if (!engine.isEnded(live.state) && state.runtime.kind === "local") {
          if (await engine.ensureWorker(spec, state.runtime)) {
            log.info(`pgmigrate ${name}: its worker was not running; started a new one`);
          }
        }
        return { id, props: resourceState(spec, state.runtime, live, state.passwordFingerprint) };
      });
    },

    async update(_id, olds, news) {
      const plan = planChange(olds, news);
      const { spec, runtime } = resolved(news);
      const previous = asResourceState(olds) as ResourceState;
      return guarded(spec, async () => {
        const name = spec.migrationName;
        const at = engine.controlLocation(spec);
        let live = await engine.getMigration(at, name);
        if (!live) {
          throw new MigrationError(
            "control",
            `migration "${name}" no longer exists on ${spec.target.host}; run \`pulumi refresh\` to drop it from the state, then \`pulumi up\` to start it again`,
            { code: "PGM_NOT_FOUND" },
          );
        }
        const rotated = plan.passwordsChanged.source || plan.passwordsChanged.target;
        if (!engine.isEnded(live.state) && (rotated || plan.runtimeChanged)) {
          // The worker got its passwords through its environment: only a new one sees new ones.
          if (await engine.ensureWorker(spec, runtime, { restart: rotated })) {
            log.info(`pgmigrate ${name}: worker restarted with the new settings`);
          }
        }
        if (plan.cutoverRequested && live.state !== "Succeeded") {
          live = await settle(spec, runtime);
          if (live.state !== "Succeeded") {
            throw new MigrationError("cutover", failureReport(live), { code: "PGM_FAILED" });
          }
        }
        const salt = previous.passwordFingerprint?.salt;
        return { outs: resourceState(spec, runtime, live, fingerprint(spec, salt)) };
      });
    },

    async delete(_id, props, remembered) {
      const state = asResourceState(props);
      if (!state) return undefined;
      const spec = specFromState(state, resolveCredentials(remembered));
      return guarded(spec, async () => {
        const name = spec.migrationName;
        const at = engine.controlLocation(spec);
        let live = await engine.getMigration(at, name);
        if (!live) return undefined;
        if (!engine.isEnded(live.state)) {
          log.warn(
            `pgmigrate ${name}: destroy before the cutover: ${await engine.cancelAnnouncement(at, name)}`,
          );
          await engine.requestAction(at, name, "cancel").catch((err: unknown) => {
            // It ended between the read and the request: nothing left to cancel.
            if ((err as MigrationError).code !== "PGM_INVALID_ACTION") throw err;
          });
          live = await engine.waitForMigration(at, name, (o) => engine.isEnded(o.state), {
            onProgress: progressPrinter(log, name),
            spec,
            runtime: state.runtime,
          });
          if (live.state === "Failed") {
            throw new MigrationError("cancel", failureReport(live), { code: "PGM_FAILED" });
          }
        }
        // Migrated data stays: forgetting only removes the control rows.
        await engine.forgetMigration(at, name);
        log.info(`pgmigrate ${name}: removed (${live.state})`);
        return live;
      });
    },
  };
}
