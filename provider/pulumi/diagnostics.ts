// What the provider tells the user about a migration: one line per visible change while it waits,
// why it failed. Pulumi shows these as the resource's diagnostics (transport: engine-log.ts).
import { statusLine } from "../api/report";
import type { MigrationOutputs, ValidationReport } from "../spec/types";
import { stdoutLog, type EngineLog } from "./engine-log";

/** Where the diagnostics of one migration resource go. */
export interface ProviderLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * The diagnostics of the resource `urn` (the stack's when unknown, e.g. a provider serialized
 * before the URN was captured), through `engine`.
 */
export function resourceLog(engine: EngineLog, urn?: string): ProviderLog {
  return {
    info: (message) => engine.log("info", message, urn),
    warn: (message) => engine.log("warning", message, urn),
  };
}

/** Plain stdout (tests and programs that run the provider outside Pulumi's host). */
export const diagnostics: ProviderLog = resourceLog(stdoutLog);

/** A log that drops everything (tests that only look at data). */
export const silent: ProviderLog = { info: () => undefined, warn: () => undefined };

/**
 * An onProgress callback that prints when the state or table counts change, and otherwise at
 * most every `quietMs` (so latency is visible without flooding the diagnostics).
 */
export function progressPrinter(
  log: ProviderLog,
  name: string,
  quietMs = 15_000,
): (o: MigrationOutputs) => void {
  let lastKey = "";
  let lastAt = 0;
  const printWarnings = warningPrinter(log, name);
  return (o) => {
    printWarnings(o);
    const line = statusLine(o);
    const key = statusLine(o, { replication: false });
    const now = Date.now();
    if (key === lastKey && now - lastAt < quietMs) return;
    lastKey = key;
    lastAt = now;
    log.info(`pgmigrate ${name}: ${line}`);
  };
}

/**
 * A callback that prints each of a migration's warnings (owners that fell back, settings not
 * copied, reconnections, …) once, as a warning diagnostic of the resource.
 */
export function warningPrinter(log: ProviderLog, name: string): (o: MigrationOutputs) => void {
  const seen = new Set<string>();
  return (o) => {
    for (const w of o.warnings) {
      const key = `${w.at} ${w.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      log.warn(`pgmigrate ${name}: ${w.database ? `${w.database}: ` : ""}${w.message}`);
    }
  };
}

/** The failed (and warning) checks of a validation report, one per line. */
export function validationProblems(report: ValidationReport | null): string[] {
  if (!report) return [];
  const lines: string[] = [];
  for (const check of report.serverLevel) {
    if (check.state === "Succeeded") continue;
    lines.push(`  server ${check.type} ${check.state}: ${check.messages.join(" ")}`);
  }
  for (const db of report.databaseLevel) {
    for (const check of db.summary) {
      if (check.state === "Succeeded") continue;
      lines.push(
        `  database "${db.databaseName}" ${check.type} ${check.state}: ${check.messages.join(" ")}`,
      );
    }
  }
  return lines;
}

/** Why a migration ended badly, with everything a user needs to fix it. */
export function failureReport(o: MigrationOutputs): string {
  const head = `migration "${o.migrationName}" ended ${o.state}${o.error ? `: ${o.error}` : ""}`;
  const lines = [head];
  if (o.state === "ValidationFailed") {
    lines.push("Failed premigration checks:", ...validationProblems(o.validation));
  }
  for (const db of Object.values(o.dbDetails)) {
    if (db.migrationState === "Failed" && db.message && db.message !== o.error) {
      lines.push(`  database "${db.databaseName}": ${db.message}`);
    }
  }
  return lines.join("\n");
}
