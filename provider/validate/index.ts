// Premigration validation: can this migration succeed? Server- and database-level checks as a
// ValidationReport. Expected problems (wrong password, missing database, ...) are check results.
import type { Client } from "pg";
import { settledSslMode } from "../pg/connect";
import { quoteIdent } from "../pg/ident";
import { redact } from "../pg/redact";
import type {
  CheckResult,
  DatabaseValidation,
  Endpoint,
  MigrationSpec,
  ValidationReport,
} from "../spec/types";
import { CHECK, errorMessage, failed, guarded, succeeded, worstState } from "./checks";
import { address, openServerSession, release, tryConnect } from "./connectivity";
import { sourceDatabaseChecks } from "./database";
import { serverParametersCheck } from "./parameters";
import {
  dumpToolsCheck,
  readServerFacts,
  type ServerFacts,
  sourceChecks,
  targetChecks,
} from "./server";
import { readTargetCatalog, type TargetCatalog, targetDatabaseCheck } from "./target";
import { findDumpTools, newestDumpTools } from "../pg/dump-tools";
import { probeDumpConnection } from "./dump-probe";

export { tablesWithoutReplicaIdentity } from "./replica-identity";
export {
  listUserTriggers,
  replicaRoleAllowed,
  statesFiringDuringApply,
  type TriggerState,
  type UserTrigger,
} from "./triggers";
export { findDumpTools } from "../pg/dump-tools";
export { probeConnection } from "./probe";

/** Databases tried for server-level sessions after the migrated ones (which may be missing). */
const FALLBACK_DATABASES = ["postgres", "template1"];

const CHECK_ORDER: readonly string[] = Object.values(CHECK);

function byCheckOrder(a: CheckResult, b: CheckResult): number {
  return CHECK_ORDER.indexOf(a.type) - CHECK_ORDER.indexOf(b.type);
}

/** The server's facts, or the error that kept us from reading them. */
async function readFacts(client: Client): Promise<ServerFacts | Error> {
  try {
    return await readServerFacts(client);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

function connectedMessage(
  role: string,
  spec: MigrationSpec["source"],
  facts: ServerFacts | undefined,
): string {
  const details = facts ? ` (PostgreSQL ${facts.version}, SSL ${facts.ssl ? "on" : "off"})` : "";
  return `connected to the ${role} ${address(spec)} as user "${spec.username}"${details}`;
}

function settleSslMode(endpoint: Endpoint, facts: ServerFacts | undefined): Endpoint {
  return facts ? settledSslMode(endpoint, facts.ssl) : endpoint;
}

async function existingDatabases(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1",
  );
  return rows.map((r) => r.datname);
}

async function validateDatabase(
  spec: MigrationSpec,
  database: string,
  source: { client: Client; database: string; facts: ServerFacts } | undefined,
  catalog: TargetCatalog | undefined,
): Promise<CheckResult[]> {
  const summary: CheckResult[] = [];
  let client: Client | undefined;
  let ownClient = false;
  try {
    if (source) {
      if (source.database === database) {
        client = source.client;
      } else {
        const session = await tryConnect(spec.source, database);
        if (session.ok) {
          client = session.client;
          ownClient = true;
        } else if (session.missingDatabase) {
          const names = await existingDatabases(source.client).catch(() => []);
          summary.push(
            failed(
              CHECK.databaseExists,
              `database ${quoteIdent(database)} does not exist on the source ${address(spec.source)}: ` +
                `correct the name in databases${names.length > 0 ? ` (databases there: ${names.join(", ")})` : ""}`,
            ),
          );
        } else {
          summary.push(failed(CHECK.databaseExists, session.message));
        }
      }
      if (client) {
        const db = client;
        summary.push(
          ...(await guarded(CHECK.databaseExists, async () => {
            const { rows } = await db.query<{ size: string }>(
              "SELECT pg_size_pretty(pg_database_size(current_database())) AS size",
            );
            return succeeded(
              CHECK.databaseExists,
              `database ${quoteIdent(database)} exists on the source (${rows[0].size})`,
            );
          })),
        );
      }
    }
    if (catalog) {
      summary.push(
        ...(await guarded(CHECK.targetDatabase, () =>
          targetDatabaseCheck(spec, database, catalog),
        )),
      );
    }
    if (client && source && catalog) {
      const db = client;
      summary.push(...(await sourceDatabaseChecks(db, source.facts.versionNum, spec, catalog)));
    }
    return summary;
  } finally {
    if (ownClient) await release(client);
  }
}

/** Runs every premigration check for `spec`. Never throws for problems a check can describe. */
export async function validateMigration(spec: MigrationSpec): Promise<ValidationReport> {
  const serverLevel: CheckResult[] = [];
  const databaseLevel: DatabaseValidation[] = [];
  const [src, tgt] = await Promise.all([
    openServerSession(spec.source, [...spec.databases, ...FALLBACK_DATABASES]),
    openServerSession(spec.target, [spec.controlDatabase, ...FALLBACK_DATABASES]),
  ]);
  try {
    const sourceFacts = src.ok ? await readFacts(src.client) : undefined;
    const targetFacts = tgt.ok ? await readFacts(tgt.client) : undefined;
    serverLevel.push(
      !src.ok
        ? failed(CHECK.sourceConnectivity, src.message)
        : sourceFacts instanceof Error
          ? failed(
              CHECK.sourceConnectivity,
              `connected, but the source's settings could not be read: ${sourceFacts.message}`,
            )
          : succeeded(
              CHECK.sourceConnectivity,
              connectedMessage("source", spec.source, sourceFacts),
            ),
      !tgt.ok
        ? failed(CHECK.targetConnectivity, tgt.message)
        : targetFacts instanceof Error
          ? failed(
              CHECK.targetConnectivity,
              `connected, but the target's settings could not be read: ${targetFacts.message}`,
            )
          : succeeded(
              CHECK.targetConnectivity,
              connectedMessage("target", spec.target, targetFacts),
            ),
    );
    const sourceOk =
      src.ok && sourceFacts && !(sourceFacts instanceof Error)
        ? { ...src, facts: sourceFacts }
        : undefined;
    const targetOk =
      tgt.ok && targetFacts && !(targetFacts instanceof Error)
        ? { ...tgt, facts: targetFacts }
        : undefined;
    if (sourceOk) {
      serverLevel.push(...sourceChecks(spec, sourceOk.facts));
      const tools = findDumpTools(Math.floor(sourceOk.facts.versionNum / 10_000));
      const unreachable = tools
        ? await probeDumpConnection(tools, spec.source, sourceOk.database)
        : undefined;
      serverLevel.push(
        unreachable
          ? failed(CHECK.dumpTools, unreachable)
          : dumpToolsCheck(sourceOk.facts, tools, tools ? undefined : newestDumpTools()),
      );
    }
    if (targetOk) serverLevel.push(...targetChecks(sourceOk?.facts, targetOk.facts));
    if (sourceOk && targetOk) {
      serverLevel.push(
        ...(await guarded(CHECK.serverParameters, () =>
          serverParametersCheck(sourceOk.client, targetOk.client),
        )),
      );
    }

    let catalog: TargetCatalog | undefined;
    if (targetOk) {
      try {
        catalog = await readTargetCatalog(targetOk.client, targetOk.facts.versionNum);
      } catch (err) {
        serverLevel.push(
          failed(
            CHECK.targetConnectivity,
            `the target's extensions, collations and databases could not be read: ${errorMessage(err)}`,
          ),
        );
      }
    }
    // Later connections skip the TLS attempt a "prefer" server has already declined.
    const settled: MigrationSpec = {
      ...spec,
      source: settleSslMode(spec.source, sourceOk?.facts),
      target: settleSslMode(spec.target, targetOk?.facts),
    };
    for (const database of spec.databases) {
      databaseLevel.push({
        databaseName: database,
        summary: await validateDatabase(settled, database, sourceOk, catalog),
      });
    }
  } finally {
    await Promise.all([
      release(src.ok ? src.client : undefined),
      release(tgt.ok ? tgt.client : undefined),
    ]);
  }
  return redactReport(
    {
      status: worstState(
        [...serverLevel, ...databaseLevel.flatMap((d) => d.summary)].map((c) => c.state),
      ),
      serverLevel: [...serverLevel].sort(byCheckOrder),
      databaseLevel,
    },
    [spec.source.password, spec.target.password],
  );
}

/** Last line of defence: no message may carry a password, whatever a server echoed back. */
function redactReport(
  report: ValidationReport,
  secrets: readonly (string | undefined)[],
): ValidationReport {
  const clean = (c: CheckResult): CheckResult => ({
    ...c,
    messages: c.messages.map((m) => redact(m, secrets)),
  });
  return {
    status: report.status,
    serverLevel: report.serverLevel.map(clean),
    databaseLevel: report.databaseLevel.map((d) => ({
      databaseName: d.databaseName,
      summary: d.summary.map(clean),
    })),
  };
}
