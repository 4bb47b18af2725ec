// ServerParameters: server settings tuned on the source (configuration file, command line)
// whose value differs on the target, so users know what to carry over by hand. Informational:
// the check is Succeeded whatever it finds, since differences are often intended (smaller or
// larger target) and never stop a migration.
import type { Client } from "pg";
import type { CheckResult } from "../spec/types";
import { CHECK, succeeded } from "./checks";
import type { ParameterValue } from "./compat";
import { parameterDifferences } from "./compat";

// Settings chosen for this server by an administrator; not defaults, not per-session values.
// File locations and internal (compile-time) values describe the installation, not the workload.
const SOURCE_SQL = `
SELECT name, setting, unit, current_setting(name) AS display
  FROM pg_settings
 WHERE source IN ('configuration file', 'command line', 'environment variable')
   AND context <> 'internal'
   AND category NOT LIKE 'File Locations%'
 ORDER BY name`;

const TARGET_SQL = `
SELECT name, setting, unit, current_setting(name) AS display
  FROM pg_settings WHERE name = ANY($1::text[])`;

export async function serverParametersCheck(source: Client, target: Client): Promise<CheckResult> {
  const sourceRows = (await source.query<ParameterValue>(SOURCE_SQL)).rows;
  const targetRows = (
    await target.query<ParameterValue>(TARGET_SQL, [sourceRows.map((r) => r.name)])
  ).rows;
  const differences = parameterDifferences(sourceRows, new Map(targetRows.map((r) => [r.name, r])));
  if (differences.length === 0) {
    return succeeded(
      CHECK.serverParameters,
      "no server parameter set on the source has a different value on the target",
    );
  }
  return succeeded(
    CHECK.serverParameters,
    "parameters set on the source have other values on the target; copy those you need:",
    ...differences,
  );
}
