// A short view of a validation report for stack exports: its status and only the checks that
// did not succeed (the full report stays in the resource's `validation` output).
import type { CheckState, ValidationReport } from "../provider/spec/types";

/** A check that did not succeed; `databaseName` is null for server-level checks. */
export interface ValidationProblem {
  readonly databaseName: string | null;
  readonly type: string;
  readonly state: Exclude<CheckState, "Succeeded">;
  readonly messages: readonly string[];
}

/** What a stack exports about validation: the status and the Failed and Warning checks. */
export interface ValidationSummary {
  /** Worst state over all checks, or null before validation ran (or with option "Migrate"). */
  readonly validationStatus: CheckState | null;
  /** Failed checks first, then warnings; empty when every check succeeded. */
  readonly problems: readonly ValidationProblem[];
}

/** Summarizes `report` for a stack export (`migration.validation.apply(validationSummary)`). */
export function validationSummary(report: ValidationReport | null | undefined): ValidationSummary {
  if (!report) return { validationStatus: null, problems: [] };
  const all: ValidationProblem[] = [];
  const add = (databaseName: string | null, check: ValidationReport["serverLevel"][number]) => {
    if (check.state !== "Succeeded") {
      all.push({ databaseName, type: check.type, state: check.state, messages: check.messages });
    }
  };
  for (const check of report.serverLevel) add(null, check);
  for (const db of report.databaseLevel)
    for (const check of db.summary) add(db.databaseName, check);
  const rank = (p: ValidationProblem): number => (p.state === "Failed" ? 0 : 1);
  return {
    validationStatus: report.status,
    problems: all
      .map((p, i) => ({ p, i }))
      .sort((a, b) => rank(a.p) - rank(b.p) || a.i - b.i)
      .map(({ p }) => p),
  };
}
