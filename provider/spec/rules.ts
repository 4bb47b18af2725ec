// Rules about migrations that do not need a database: when two specs are the same migration,
// and which requested actions a migration in a given state accepts.
import { createHash } from "node:crypto";
import { publicSpec } from "../pg/redact";
import { TERMINAL_STATES, type MigrationSpec, type MigrationState } from "./types";

/** Stable JSON (sorted keys) so equal specs hash equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Identity of a migration's spec: passwords and `cutover` do not count. */
export function specHash(spec: MigrationSpec): string {
  const { cutover: _cutover, ...rest } = publicSpec(spec);
  void _cutover;
  return createHash("sha256").update(canonical(rest)).digest("hex");
}

/** Why `action` cannot be requested now, or undefined when it can. */
export function actionProblem(
  row: { state: MigrationState; substate: string; mode: string; name: string },
  action: "cutover" | "cancel",
): string | undefined {
  if (TERMINAL_STATES.includes(row.state)) {
    return `migration "${row.name}" has already ended (${row.state}); there is nothing to ${action}`;
  }
  if (action === "cancel") return undefined;
  if (row.mode !== "Online") {
    return `cutover applies to Online migrations only; "${row.name}" is an Offline migration and completes by itself`;
  }
  const allowed =
    row.state === "WaitingForUserAction" ||
    (row.state === "InProgress" && ["MigratingData", "CompletingMigration"].includes(row.substate));
  if (!allowed) {
    return `migration "${row.name}" is ${row.state}/${row.substate}; a cutover can be requested once the data migration has started`;
  }
  return undefined;
}
