// Server-level checks: versions, logical replication prerequisites on the source, privileges and
// writability of the target, dump tools. Facts are read in one query per server; rules are pure.
import type { Client } from "pg";
import type { CheckResult, MigrationSpec } from "../spec/types";
import { CHECK, failed, succeeded, warning } from "./checks";
import type { DumpTools } from "../pg/dump-tools";
import { quoteIdent } from "../pg/ident";

/** What the checks need to know about one server and the session's user. */
export interface ServerFacts {
  readonly versionNum: number;
  /** e.g. "15.18". */
  readonly version: string;
  readonly username: string;
  readonly superuser: boolean;
  readonly replication: boolean;
  readonly createdb: boolean;
  /** Member of AWS's rds_replication role (false where that role does not exist). */
  readonly rdsReplication: boolean;
  readonly ssl: boolean;
  readonly readOnly: boolean;
  readonly inRecovery: boolean;
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly usedReplicationSlots: number;
  readonly maxWalSenders: number;
  readonly activeWalSenders: number;
}

const FACTS_SQL = `
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       current_user AS username,
       r.rolsuper AS superuser,
       r.rolreplication AS replication,
       r.rolcreatedb AS createdb,
       COALESCE((SELECT pg_has_role(current_user, g.oid, 'MEMBER')
                   FROM pg_roles g WHERE g.rolname = 'rds_replication'), false) AS rds_replication,
       COALESCE((SELECT s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()), false) AS ssl,
       current_setting('default_transaction_read_only') = 'on' AS read_only,
       pg_is_in_recovery() AS in_recovery,
       current_setting('wal_level') AS wal_level,
       current_setting('max_replication_slots')::int AS max_replication_slots,
       (SELECT count(*) FROM pg_replication_slots)::int AS used_replication_slots,
       current_setting('max_wal_senders')::int AS max_wal_senders,
       (SELECT count(*) FROM pg_stat_replication)::int AS active_wal_senders
  FROM pg_roles r
 WHERE r.rolname = current_user`;

interface FactsRow {
  version_num: number;
  version: string;
  username: string;
  superuser: boolean;
  replication: boolean;
  createdb: boolean;
  rds_replication: boolean;
  ssl: boolean;
  read_only: boolean;
  in_recovery: boolean;
  wal_level: string;
  max_replication_slots: number;
  used_replication_slots: number;
  max_wal_senders: number;
  active_wal_senders: number;
}

export async function readServerFacts(client: Client): Promise<ServerFacts> {
  const { rows } = await client.query<FactsRow>(FACTS_SQL);
  const r = rows[0];
  return {
    versionNum: r.version_num,
    version: r.version.split(" ")[0],
    username: r.username,
    superuser: r.superuser,
    replication: r.replication,
    createdb: r.createdb,
    rdsReplication: r.rds_replication,
    ssl: r.ssl,
    readOnly: r.read_only,
    inRecovery: r.in_recovery,
    walLevel: r.wal_level,
    maxReplicationSlots: r.max_replication_slots,
    usedReplicationSlots: r.used_replication_slots,
    maxWalSenders: r.max_wal_senders,
    activeWalSenders: r.active_wal_senders,
  };
}

/** Major version as users say it: 9.6, 10, 16. */
export function majorOf(versionNum: number): number {
  const first = Math.floor(versionNum / 10_000);
  // Before 10 the major version had two parts: 90624 is 9.6.
  return versionNum >= 100_000 ? first : first + Math.floor((versionNum % 10_000) / 100) / 10;
}

const AWS = ["AWS_RDS", "AWS_AURORA"];

function walLevelHint(serverType: string | undefined): string {
  switch (serverType) {
    case "AWS_RDS":
    case "AWS_AURORA":
      return "set rds.logical_replication = 1 in the DB (cluster) parameter group and reboot the instance";
    case "GCP_CloudSQL":
      return "set the cloudsql.logical_decoding flag to on";
    case "PostgreSQLSingleServer":
      return "set azure.replication_support to LOGICAL and restart the server";
    default:
      return "set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server";
  }
}

/** How to give `username` the right to replicate, where the source runs. */
export function replicationFix(serverType: string | undefined, username: string): string {
  const role = quoteIdent(username);
  switch (serverType) {
    case "AWS_RDS":
    case "AWS_AURORA":
      return `run GRANT rds_replication TO ${role}; as the master user (REPLICATION cannot be set on RDS/Aurora)`;
    case "PostgreSQLSingleServer":
      return `run ALTER ROLE ${role} WITH REPLICATION; as the server admin (a member of azure_pg_admin)`;
    case "GCP_CloudSQL":
    case "GCP_AlloyDB":
      return `run ALTER ROLE ${role} WITH REPLICATION; as a member of cloudsqlsuperuser`;
    default:
      return `run ALTER ROLE ${role} WITH REPLICATION; as a superuser (on Azure flexible server: as the server admin, a member of azure_pg_admin)`;
  }
}

/** Source version and, online, its logical replication prerequisites. */
export function sourceChecks(spec: MigrationSpec, source: ServerFacts): CheckResult[] {
  const online = spec.mode === "Online";
  const checks: CheckResult[] = [];
  const major = majorOf(source.versionNum);
  if (source.versionNum < 90_500) {
    checks.push(
      failed(
        CHECK.sourceVersion,
        `source runs PostgreSQL ${source.version}; version 9.5 or later is required`,
      ),
    );
  } else if (online && source.versionNum < 100_000) {
    checks.push(
      failed(
        CHECK.sourceVersion,
        `source runs PostgreSQL ${source.version}; Online migrations need logical replication (pgoutput), available from version 10: upgrade the source or use mode "Offline"`,
      ),
    );
  } else {
    checks.push(
      succeeded(CHECK.sourceVersion, `source runs PostgreSQL ${source.version} (major ${major})`),
    );
  }
  if (!online) return checks;

  const databases = spec.databases.length;
  checks.push(
    source.walLevel === "logical"
      ? succeeded(CHECK.logicalReplication, "wal_level is logical")
      : failed(
          CHECK.logicalReplication,
          `wal_level is "${source.walLevel}" on the source but Online migrations need "logical": ${walLevelHint(spec.source.serverType)}`,
        ),
  );

  const freeSlots = source.maxReplicationSlots - source.usedReplicationSlots;
  checks.push(
    freeSlots >= databases
      ? succeeded(
          CHECK.replicationSlots,
          `${freeSlots} of ${source.maxReplicationSlots} replication slots free; ${databases} needed (one per database)`,
        )
      : failed(
          CHECK.replicationSlots,
          `max_replication_slots is ${source.maxReplicationSlots} and ${source.usedReplicationSlots} are in use, so ${Math.max(freeSlots, 0)} are free but ${databases} are needed (one per database): ` +
            `raise max_replication_slots and restart the source, or drop unused slots (see pg_replication_slots)`,
        ),
  );

  const freeSenders = source.maxWalSenders - source.activeWalSenders;
  if (source.maxWalSenders < databases) {
    checks.push(
      failed(
        CHECK.walSenders,
        `max_wal_senders is ${source.maxWalSenders} but ${databases} are needed (one per database): raise max_wal_senders and restart the source`,
      ),
    );
  } else if (freeSenders < databases) {
    checks.push(
      warning(
        CHECK.walSenders,
        `max_wal_senders is ${source.maxWalSenders} and ${source.activeWalSenders} are in use: ${databases} more are needed (one per database) once replication starts`,
      ),
    );
  } else {
    checks.push(
      succeeded(
        CHECK.walSenders,
        `max_wal_senders is ${source.maxWalSenders}; ${databases} needed`,
      ),
    );
  }

  const isAws = AWS.includes(spec.source.serverType ?? "");
  if (source.superuser || source.replication || (isAws && source.rdsReplication)) {
    checks.push(succeeded(CHECK.replicationPrivilege, `user "${source.username}" may replicate`));
  } else {
    checks.push(
      failed(
        CHECK.replicationPrivilege,
        `source user "${source.username}" has neither the REPLICATION attribute nor superuser${isAws ? " nor membership in rds_replication" : ""}: ${replicationFix(spec.source.serverType, source.username)}`,
      ),
    );
  }
  return checks;
}

/** Target version against the source, CREATEDB and writability. */
export function targetChecks(source: ServerFacts | undefined, target: ServerFacts): CheckResult[] {
  const checks: CheckResult[] = [];
  if (source) {
    const sourceMajor = majorOf(source.versionNum);
    const targetMajor = majorOf(target.versionNum);
    checks.push(
      targetMajor >= sourceMajor
        ? succeeded(
            CHECK.targetVersion,
            `target runs PostgreSQL ${target.version} (source ${source.version})`,
          )
        : failed(
            CHECK.targetVersion,
            `target runs PostgreSQL ${target.version}, older than the source's ${source.version}: the target's major version must be ${sourceMajor} or later`,
          ),
    );
  }
  checks.push(
    target.superuser || target.createdb
      ? succeeded(CHECK.createDatabasePrivilege, `user "${target.username}" may create databases`)
      : failed(
          CHECK.createDatabasePrivilege,
          `target user "${target.username}" may not create databases: run ALTER ROLE ${quoteIdent(target.username)} CREATEDB; as an administrator, or migrate as one`,
        ),
  );
  if (target.inRecovery) {
    checks.push(
      failed(
        CHECK.targetReadOnly,
        "the target is a read replica (in recovery): migrate to a primary server",
      ),
    );
  } else if (target.readOnly) {
    checks.push(
      failed(
        CHECK.targetReadOnly,
        `default_transaction_read_only is on for user "${target.username}" on the target: set it to off (server parameter, ALTER ROLE or ALTER DATABASE ... SET)`,
      ),
    );
  } else {
    checks.push(succeeded(CHECK.targetReadOnly, "the target accepts writes"));
  }
  return checks;
}

/** pg_dump/pg_restore new enough to read the source. */
export function dumpToolsCheck(
  source: ServerFacts,
  tools: DumpTools | undefined,
  newest: DumpTools | undefined,
): CheckResult {
  const needed = Math.floor(majorOf(source.versionNum));
  if (tools) {
    return succeeded(
      CHECK.dumpTools,
      `pg_dump ${tools.major} at ${tools.pgDump}; pg_restore at ${tools.pgRestore}`,
    );
  }
  const found = newest ? ` (found only version ${newest.major} at ${newest.pgDump})` : "";
  return failed(
    CHECK.dumpTools,
    `pg_dump and pg_restore ${needed} or later are needed for a PostgreSQL ${source.version} source${found}: install the PostgreSQL ${needed} client tools (e.g. postgresql-client-${needed}) or put them on PATH`,
  );
}
