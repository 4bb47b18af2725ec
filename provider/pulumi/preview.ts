// What a preview of a new migration learns from the servers, when the program already knows
// their addresses and passwords (not values of resources created in the same update):
// connectivity, versions, wal_level, missing databases, tables without identity — the
// premigration checks `pulumi up` will run — as diagnostics of the resource.
import * as engine from "../api/index";
import { redact } from "../pg/redact";
import { resolveSpec } from "../spec/inputs";
import type { CheckResult } from "../spec/types";
import type { ProviderLog } from "./diagnostics";
import { containsUnknown, userInputs } from "./state";

type Inputs = Record<string, unknown>;

/** A check that did not succeed, in one line. */
function checkLine(check: CheckResult, database?: string): string {
  const where = database ? `database "${database}" ` : "";
  return `${where}${check.type} ${check.state}: ${check.messages.join(" ")}`;
}

/**
 * Validates a migration about to be created (`olds` empty) against its servers and reports
 * what `pulumi up` would find: Failed checks and warnings as warning diagnostics, a line when
 * every check passed, a note when the servers did not answer within `timeoutMs`. Nothing for a
 * migration that exists already, inputs still unknown, invalid inputs (check reports those) or
 * option "Migrate" (no checks asked for).
 */
export async function previewChecks(
  olds: Inputs | undefined,
  news: Inputs,
  log: ProviderLog,
  timeoutMs?: number,
): Promise<void> {
  if (olds && Object.keys(olds).length > 0) return;
  const inputs = userInputs(news);
  if (containsUnknown(inputs)) return;
  const resolved = resolveSpec(inputs);
  if (!resolved.ok || resolved.spec.option === "Migrate") return;
  const { spec } = resolved;
  const name = spec.migrationName;
  const secrets = [spec.source.password, spec.target.password];
  const say = (message: string): string => redact(`pgmigrate ${name}: ${message}`, secrets);

  const limit = timeoutMs ?? engine.PREVIEW_VALIDATION_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const [validation, overwrite] = await Promise.all([
    engine.previewValidation(spec, limit),
    // Bounded like the checks: a silent target must not hold the preview either.
    Promise.race([
      engine.overwriteAnnouncement(spec),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), limit))),
    ]).finally(() => clearTimeout(timer)),
  ]);
  if (overwrite) log.warn(say(`pulumi up will drop data: ${overwrite}`));
  if (!validation.done) {
    log.warn(
      say(
        `the servers did not answer the premigration checks within ${validation.timeoutMs / 1000} s; ` +
          "pulumi up runs them again",
      ),
    );
    return;
  }
  const { report } = validation;
  const problems = [
    ...report.serverLevel.filter((c) => c.state !== "Succeeded").map((c) => checkLine(c)),
    ...report.databaseLevel.flatMap((db) =>
      db.summary.filter((c) => c.state !== "Succeeded").map((c) => checkLine(c, db.databaseName)),
    ),
  ];
  if (problems.length === 0) {
    log.info(say("premigration checks against both servers succeeded"));
    return;
  }
  const verdict =
    report.status === "Failed"
      ? "pulumi up will fail validation"
      : "premigration checks found warnings";
  for (const problem of problems) log.warn(say(`${verdict}: ${problem}`));
}
