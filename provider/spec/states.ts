// Migration states and what they mean: which ones are final, where a wait settles, and which
// requested actions a migration accepts in each. Every other module asks here.

export type MigrationState =
  "InProgress" | "WaitingForUserAction" | "Canceled" | "Failed" | "ValidationFailed" | "Succeeded";

export type MigrationSubstate =
  | "PerformingPreRequisiteSteps"
  | "ValidationInProgress"
  | "MigratingData"
  | "WaitingForCutoverTrigger"
  | "CompletingMigration"
  | "Completed"
  | "Failed";

export type RequestedAction = "cutover" | "cancel";

/** States after which nothing more happens (SQL receives this list as a parameter). */
export const TERMINAL_STATES: readonly MigrationState[] = [
  "Canceled",
  "Failed",
  "ValidationFailed",
  "Succeeded",
];

/** Whether a migration in `state` has ended. */
export function isEnded(state: MigrationState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** States after which `--wait` / provider create return: WaitingForUserAction or ended. */
export function isSettled(o: { readonly state: MigrationState }): boolean {
  return o.state === "WaitingForUserAction" || isEnded(o.state);
}

/** Why `action` cannot be requested now, or undefined when it can. */
export function actionProblem(
  row: {
    state: MigrationState;
    substate: string;
    mode: string;
    name: string;
    requestedAction?: RequestedAction | null;
    cutoverDrained?: boolean;
  },
  action: RequestedAction,
): string | undefined {
  if (isEnded(row.state)) {
    return `migration "${row.name}" has already ended (${row.state}); there is nothing to ${action}`;
  }
  if (action === "cancel" && row.cutoverDrained) {
    return (
      `migration "${row.name}" can no longer be canceled: its cutover has applied every change ` +
      "up to the cutover LSN and the target is complete; the cutover finishes by itself " +
      "(follow it with `pgmigrate show`)"
    );
  }
  if (action === "cancel") return undefined;
  // A cancel overrides a pending cutover; a repeated request is harmless.
  if (row.requestedAction === "cancel") {
    return `migration "${row.name}" is being canceled; a cutover is no longer possible`;
  }
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
