// Building blocks of a ValidationReport: check constructors and the "worst state wins" rule.
import { quoteIdent } from "../pg/ident";
import type { CheckResult, CheckState } from "../spec/types";

/** Check names as they appear in `validation.serverLevel[].type` / `databaseLevel[].summary[].type`. */
export const CHECK = {
  sourceConnectivity: "SourceConnectivity",
  targetConnectivity: "TargetConnectivity",
  sourceVersion: "SourceVersion",
  targetVersion: "TargetVersion",
  logicalReplication: "LogicalReplication",
  replicationSlots: "ReplicationSlots",
  walSenders: "WalSenders",
  replicationPrivilege: "ReplicationPrivilege",
  dumpTools: "DumpTools",
  createDatabasePrivilege: "CreateDatabasePrivilege",
  targetReadOnly: "TargetReadOnly",
  serverParameters: "ServerParameters",
  databaseExists: "DatabaseExists",
  targetDatabase: "TargetDatabase",
  extensions: "Extensions",
  collations: "Collations",
  encoding: "Encoding",
  replicaIdentity: "ReplicaIdentity",
  publicationPrivilege: "PublicationPrivilege",
  targetTriggers: "TargetTriggers",
  privileges: "Privileges",
  unsupportedObjects: "UnsupportedObjects",
  readOnlyDatabase: "ReadOnlyDatabase",
  money: "Money",
} as const;

export type CheckType = (typeof CHECK)[keyof typeof CHECK];

const RANK: Record<CheckState, number> = { Succeeded: 0, Warning: 1, Failed: 2 };

export function succeeded(type: CheckType, ...messages: string[]): CheckResult {
  return { type, state: "Succeeded", messages };
}

export function warning(type: CheckType, ...messages: string[]): CheckResult {
  return { type, state: "Warning", messages };
}

export function failed(type: CheckType, ...messages: string[]): CheckResult {
  return { type, state: "Failed", messages };
}

/** The worst of `states` (Failed > Warning > Succeeded); Succeeded for none. */
export function worstState(states: Iterable<CheckState>): CheckState {
  let worst: CheckState = "Succeeded";
  for (const state of states) if (RANK[state] > RANK[worst]) worst = state;
  return worst;
}

/** `a, b, c and 7 more` — keeps messages readable for databases with thousands of tables. */
export function listSome(items: readonly string[], max = 10): string {
  if (items.length <= max) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/** `schema.name` as users read it: quoted only where PostgreSQL would need quotes (like `%I`). */
export function displayName(schema: string, name: string): string {
  const part = (id: string): string => (/^[a-z_][a-z0-9_$]*$/.test(id) ? id : quoteIdent(id));
  return `${part(schema)}.${part(name)}`;
}

/** Runs a check; an unexpected error (a catalog query refused, a dropped connection) fails it. */
export async function guarded(
  type: CheckType,
  run: () => Promise<CheckResult | CheckResult[]>,
): Promise<CheckResult[]> {
  try {
    const result = await run();
    return Array.isArray(result) ? result : [result];
  } catch (err) {
    return [failed(type, `the check could not run: ${errorMessage(err)}`)];
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
