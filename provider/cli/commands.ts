// The pgmigrate commands that read or steer a migration: create, list, show, update,
// check-name-availability. Each returns its exit code; expected failures throw UsageError.
import {
  cancelAnnouncement,
  checkNameAvailability,
  controlLocation,
  createMigration,
  forgetMigration,
  getMigration,
  getWorkUnits,
  isEnded,
  isSettled,
  listMigrations,
  overwriteAnnouncement,
  requestAction,
  waitForMigration,
  type RuntimeOptions,
} from "../api/index";
import { statusLine } from "../api/report";
import { resolveSpec } from "../spec/inputs";
import { redact } from "../pg/redact";
import type { MigrationOutputs, MigrationSpec } from "../spec/types";
import {
  checkMigrationName,
  noSuchMigration,
  note,
  out,
  outJson,
  warn,
  type CliContext,
} from "./context";
import { azureMigration } from "./azure-json";
import { buildCreateInput } from "./create-input";
import { formatList, formatShow, formatUnits } from "./format";
import { readPropertiesFile } from "./properties";
import { reviveWorker } from "./respawn";
import { EXIT_OK, exitCodeForState, UsageError } from "./usage";

/** Longest wait a timer can express (setTimeout overflows above 2^31-1 ms). */
const FOREVER_MS = 2_147_483_647;

export interface CreateOptions {
  migrationName: string;
  migrationMode?: string;
  migrationOption?: string;
  splitTablesLargerThan?: string;
  properties: string;
  wait?: boolean;
  json?: boolean;
}

/**
 * Waits until `until` holds, printing a progress line on stderr whenever it changes. With
 * `spec` a dead local worker is restarted; `runtime` is the one just declared (create), else
 * the stored runtime decides. A gone external worker is warned about (`warned`: the caller just
 * did, so the first repeat comes a minute later).
 */
async function waitWithProgress(
  ctx: CliContext,
  name: string,
  until: (o: MigrationOutputs) => boolean,
  options: { spec?: MigrationSpec; runtime?: RuntimeOptions; warned?: boolean } = {},
): Promise<MigrationOutputs> {
  let last = "";
  const quietUntil = options.warned ? Date.now() + 60_000 : 0;
  return waitForMigration(ctx.at, name, until, {
    timeoutMs: FOREVER_MS,
    spec: options.spec,
    runtime: options.runtime,
    onWarning: (message) => {
      if (Date.now() >= quietUntil) warn(redact(message, ctx.secrets));
    },
    onProgress: (o) => {
      const line = redact(statusLine(o), ctx.secrets);
      if (line !== last)
        process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      last = line;
    },
  });
}

async function print(ctx: CliContext, outputs: MigrationOutputs, json: boolean | undefined) {
  await (json ? outJson(outputs) : out(redact(formatShow(outputs, ctx.label), ctx.secrets)));
}

export async function createCommand(ctx: CliContext, opts: CreateOptions): Promise<number> {
  checkMigrationName(opts.migrationName);
  const parsed = readPropertiesFile(opts.properties);
  if (!parsed.ok) throw new UsageError(parsed.problems.join("; "));
  for (const line of parsed.properties.notes) note(`note: ${line}`);
  const built = buildCreateInput(parsed.properties, ctx.server, opts, ctx.env);
  ctx.secrets.push(...built.secrets);
  for (const warning of built.warnings) warn(warning);
  const resolved = resolveSpec(built.input, opts.migrationName);
  if (!resolved.ok) {
    const origins = parsed.properties.origins;
    const problems = resolved.problems.map(
      (p) => `${origins.get(p.property) ?? p.property}: ${p.reason}`,
    );
    throw new UsageError(`${opts.properties}: ${problems.join("; ")}`);
  }
  const { spec, runtime } = resolved;
  if (
    spec.overwriteDbsInTarget &&
    !(await getMigration(controlLocation(spec), spec.migrationName))
  ) {
    const announcement = await overwriteAnnouncement(spec);
    if (announcement) warn(redact(announcement, ctx.secrets));
  }
  const created = await createMigration(spec, runtime);
  if (created.attached) note(`attached to the existing migration ${spec.migrationName}`);
  let outputs = created.outputs;
  if (opts.wait) {
    // The properties file may be where the target password came from: wait where create wrote.
    const specCtx: CliContext = { ...ctx, at: controlLocation(spec) };
    outputs = await waitWithProgress(specCtx, spec.migrationName, isSettled, { spec, runtime });
  }
  await print(ctx, outputs, opts.json);
  return opts.wait ? exitCodeForState(outputs.state) : EXIT_OK;
}

export async function listCommand(
  ctx: CliContext,
  opts: { filter?: string; json?: boolean },
): Promise<number> {
  const filterText = (opts.filter ?? "Active").toLowerCase();
  if (filterText !== "active" && filterText !== "all") {
    throw new UsageError(`--filter must be Active or All, not "${opts.filter}"`);
  }
  const items = await listMigrations(ctx.at, filterText === "all" ? "All" : "Active");
  if (opts.json) await outJson(items);
  else if (items.length === 0)
    await out(`No ${filterText === "all" ? "" : "active "}migrations on ${ctx.label}.`);
  else await out(formatList(items));
  return EXIT_OK;
}

/** Restarts a dead worker when the environment has the passwords; otherwise says why not. */
async function revive(ctx: CliContext, name: string) {
  const result = await reviveWorker(ctx.at, name, ctx.env);
  ctx.secrets.push(...result.secrets);
  if (result.warning) warn(redact(result.warning, ctx.secrets));
  if (result.started) note(`started a new worker for migration ${name}`);
  return result;
}

/** `show --output`: text (default), json (as --json) or azure (the reference service's shape). */
const SHOW_FORMATS = ["text", "json", "azure"] as const;

export async function showCommand(
  ctx: CliContext,
  opts: { migrationName: string; json?: boolean; output?: string; units?: boolean },
): Promise<number> {
  checkMigrationName(opts.migrationName);
  const format = (opts.output ?? (opts.json ? "json" : "text")).toLowerCase();
  if (!(SHOW_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(
      `--output must be one of ${SHOW_FORMATS.join(", ")}, not "${opts.output}"`,
    );
  }
  if (opts.json && format !== "json") {
    throw new UsageError(`--json and --output ${format} disagree; keep one of them`);
  }
  let outputs = await getMigration(ctx.at, opts.migrationName);
  if (!outputs) throw noSuchMigration(ctx, opts.migrationName);
  if (!isEnded(outputs.state)) {
    const revived = await revive(ctx, opts.migrationName);
    if (revived.started) outputs = (await getMigration(ctx.at, opts.migrationName)) ?? outputs;
  }
  if (format === "azure") await outJson(azureMigration(outputs, ctx.label));
  else await print(ctx, outputs, format === "json");
  if (opts.units && format === "text") {
    await out(formatUnits(await getWorkUnits(ctx.at, opts.migrationName)));
  }
  return EXIT_OK;
}

/**
 * Removes an ended migration's record (state, progress, events) so its name can be used again.
 * Never touches data: the target databases stay as the migration left them.
 */
export async function deleteCommand(
  ctx: CliContext,
  opts: { migrationName: string },
): Promise<number> {
  checkMigrationName(opts.migrationName);
  const outputs = await getMigration(ctx.at, opts.migrationName);
  if (!outputs) throw noSuchMigration(ctx, opts.migrationName);
  if (!isEnded(outputs.state)) {
    throw new UsageError(
      `migration ${opts.migrationName} is ${outputs.state}: delete removes only the record of an ` +
        `ended migration (Succeeded, Failed, ValidationFailed, Canceled); cancel it first with ` +
        `pgmigrate update --cancel --wait, or cut it over`,
    );
  }
  await forgetMigration(ctx.at, opts.migrationName);
  await out(
    `deleted the record of migration ${opts.migrationName} (${outputs.state}) on ${ctx.label}; ` +
      `the databases on the target were not touched`,
  );
  return EXIT_OK;
}

export async function updateCommand(
  ctx: CliContext,
  opts: {
    migrationName: string;
    cutover?: boolean;
    cancel?: boolean;
    wait?: boolean;
    json?: boolean;
  },
): Promise<number> {
  checkMigrationName(opts.migrationName);
  if (Boolean(opts.cutover) === Boolean(opts.cancel)) {
    throw new UsageError("update needs exactly one of --cutover or --cancel");
  }
  const action = opts.cutover ? "cutover" : "cancel";
  const before = await getMigration(ctx.at, opts.migrationName);
  if (!before) throw noSuchMigration(ctx, opts.migrationName);
  if (action === "cancel" && !isEnded(before.state)) {
    warn(redact(await cancelAnnouncement(ctx.at, opts.migrationName), ctx.secrets));
  }
  await requestAction(ctx.at, opts.migrationName, action);
  // The worker carries the action out, so it has to be running.
  const revived = await revive(ctx, opts.migrationName);
  let outputs: MigrationOutputs;
  if (opts.wait) {
    outputs = await waitWithProgress(ctx, opts.migrationName, (o) => isEnded(o.state), {
      spec: revived.spec,
      warned: revived.warning !== undefined,
    });
  } else {
    outputs = (await getMigration(ctx.at, opts.migrationName)) ?? before;
    // The worker acts on the request in the background: say so before the current state.
    const next = `follow it with pgmigrate watch, or wait for it with --wait`;
    if (opts.json) note(`${action} requested for migration ${opts.migrationName}; ${next}`);
    else await out(`${action} requested for migration ${opts.migrationName}; ${next}\n`);
  }
  await print(ctx, outputs, opts.json);
  return opts.wait ? exitCodeForState(outputs.state) : EXIT_OK;
}

export async function checkNameCommand(
  ctx: CliContext,
  opts: { migrationName: string; json?: boolean },
): Promise<number> {
  checkMigrationName(opts.migrationName);
  const result = await checkNameAvailability(ctx.at, opts.migrationName);
  if (opts.json) {
    await outJson({ name: opts.migrationName, available: result.available, reason: result.reason });
  } else if (result.available) {
    await out(`${opts.migrationName} is available on ${ctx.label}`);
  } else {
    await out(
      `${opts.migrationName} is not available on ${ctx.label}: ${result.reason ?? "in use"}`,
    );
  }
  return EXIT_OK;
}
