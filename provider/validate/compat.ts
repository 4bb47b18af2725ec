// Pure comparisons between what the source uses and what the target offers (extensions,
// collations, locales, server parameters). No I/O here, so the rules are unit-tested directly.

/** Compares extension versions like "1.10" > "1.9", "2.5.4" > "2.5"; non-numeric parts as text. */
export function compareVersionStrings(a: string, b: string): number {
  const pa = a.split(/[.\-_]/);
  const pb = b.split(/[.\-_]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "0";
    const y = pb[i] ?? "0";
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const diff = Number.isNaN(nx) || Number.isNaN(ny) ? x.localeCompare(y) : Math.sign(nx - ny);
    if (diff !== 0) return diff;
  }
  return 0;
}

export interface InstalledExtension {
  readonly name: string;
  readonly version: string;
}

/** Extensions PostgreSQL installs in every database: nothing to check. */
const ALWAYS_PRESENT = new Set(["plpgsql"]);

/**
 * Why extensions installed on the source cannot be recreated on the target. pg_dump emits
 * `CREATE EXTENSION` without a version, so the target's default version is what gets installed.
 * `allowList` is set on managed targets that restrict extensions (Azure's `azure.extensions`).
 */
export function extensionProblems(
  installed: readonly InstalledExtension[],
  targetDefaults: ReadonlyMap<string, string>,
  allowList?: readonly string[],
): string[] {
  const problems: string[] = [];
  const allowed = allowList ? new Set(allowList.map((e) => e.trim().toLowerCase())) : undefined;
  for (const ext of installed) {
    if (ALWAYS_PRESENT.has(ext.name)) continue;
    const available = targetDefaults.get(ext.name);
    if (available === undefined) {
      problems.push(
        `extension "${ext.name}" ${ext.version} is installed on the source but not available on the target: ` +
          `install it on the target server, or drop it on the source if it is unused`,
      );
    } else if (compareVersionStrings(available, ext.version) < 0) {
      problems.push(
        `extension "${ext.name}" is version ${ext.version} on the source but the target only offers ${available}: ` +
          `upgrade the extension on the target server`,
      );
    } else if (allowed && !allowed.has(ext.name)) {
      problems.push(
        `extension "${ext.name}" is not allow-listed on the target: add it to the azure.extensions server parameter`,
      );
    }
  }
  return problems;
}

/** pg_collation.collprovider: c = libc, i = ICU, b = builtin (17+), d = database default. */
export type CollationProvider = "c" | "i" | "b" | "d";

const PROVIDER_NAMES: Record<CollationProvider, string> = {
  c: "libc",
  i: "icu",
  b: "builtin",
  d: "default",
};

/** A collation referenced by columns, indexes or domains in a source database. */
export interface UsedCollation {
  readonly schema: string;
  readonly name: string;
  readonly provider: CollationProvider;
  readonly collate: string | null;
  readonly ctype: string | null;
  /** Qualified columns/indexes using it (a few, for the message). */
  readonly usedBy: readonly string[];
}

/** What the target offers for collations and locales. */
export interface TargetLocales {
  readonly major: number;
  /** `name/provider` of every collation in the target's pg_catalog. */
  readonly systemCollations: ReadonlySet<string>;
  /** Normalized libc locale names the target knows (pg_collation libc rows, database locales). */
  readonly libcLocales: ReadonlySet<string>;
  /** Providers present in the target's pg_collation (ICU only when built with ICU). */
  readonly providers: ReadonlySet<string>;
}

/** `en_US.UTF-8` and `en_US.utf8` name the same libc locale. */
export function normalizeLocale(locale: string): string {
  const [base, modifier] = locale.split("@", 2);
  const [language, codeset] = base.split(".", 2);
  let out = language;
  if (codeset !== undefined) out += "." + codeset.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (modifier !== undefined) out += "@" + modifier;
  return out;
}

/** True if a libc locale can be used on the target. */
export function libcLocaleAvailable(locale: string, target: TargetLocales): boolean {
  const normalized = normalizeLocale(locale);
  if (normalized === "C" || normalized === "POSIX") return true;
  return target.libcLocales.has(normalized);
}

export function systemCollationKey(name: string, provider: string): string {
  return `${name}/${provider}`;
}

/**
 * Why collations used on the source will not work on the target. Collations in pg_catalog come
 * with the server (initdb imports the OS's and ICU's locales) and must exist there by name;
 * collations in user schemas are recreated by pg_dump, so only their locale must be available.
 */
export function collationProblems(used: readonly UsedCollation[], target: TargetLocales): string[] {
  const problems: string[] = [];
  for (const coll of used) {
    const label = `collation ${coll.schema === "pg_catalog" ? "" : coll.schema + "."}"${coll.name}" (${PROVIDER_NAMES[coll.provider]})`;
    const where = coll.usedBy.length > 0 ? `, used by ${coll.usedBy.join(", ")}` : "";
    if (coll.schema === "pg_catalog") {
      if (!target.systemCollations.has(systemCollationKey(coll.name, coll.provider))) {
        problems.push(
          `${label} does not exist on the target${where}: install the locale (or a matching ICU version) on the target, ` +
            `or change those columns to a collation the target has`,
        );
      }
      continue;
    }
    if (coll.provider === "c") {
      const missing = [coll.collate, coll.ctype].filter(
        (l): l is string => l !== null && !libcLocaleAvailable(l, target),
      );
      if (missing.length > 0) {
        problems.push(
          `${label} uses locale "${missing[0]}", which the target does not have${where}: install that locale on the target server's OS`,
        );
      }
    } else if (!target.providers.has(coll.provider)) {
      problems.push(
        `${label} needs ${PROVIDER_NAMES[coll.provider]} collation support, which the target lacks${where}`,
      );
    }
  }
  return problems;
}

/** A database's encoding and locale, as CREATE DATABASE needs them. */
export interface DatabaseLocale {
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly provider: CollationProvider;
  readonly icuLocale: string | null;
}

/** Why CREATE DATABASE with the source database's encoding and locale would fail on the target. */
export function databaseLocaleProblems(db: DatabaseLocale, target: TargetLocales): string[] {
  const problems: string[] = [];
  for (const [what, locale] of [
    ["LC_COLLATE", db.collate],
    ["LC_CTYPE", db.ctype],
  ] as const) {
    if (!libcLocaleAvailable(locale, target)) {
      problems.push(
        `${what} "${locale}" (encoding ${db.encoding}) is not available on the target: install that locale on the target server's OS`,
      );
    }
  }
  if (db.provider === "i" && (target.major < 15 || !target.providers.has("i"))) {
    problems.push(
      `the database uses the ICU locale "${db.icuLocale ?? ""}", which needs a target built with ICU (PostgreSQL 15 or later)`,
    );
  }
  if (db.provider === "b" && target.major < 17) {
    problems.push(
      "the database uses the builtin locale provider, which needs PostgreSQL 17 or later on the target",
    );
  }
  return problems;
}

/** One row of pg_settings, with the value as SHOW prints it. */
export interface ParameterValue {
  readonly name: string;
  readonly setting: string;
  readonly unit: string | null;
  readonly display: string;
}

/** Parameters that describe this machine or installation, not the workload: never worth copying. */
const ENVIRONMENT_SPECIFIC = [
  /^(port|listen_addresses|data_directory|config_file|hba_file|ident_file|external_pid_file)$/,
  /^(cluster_name|unix_socket_.*|ssl.*|krb_.*|bonjour.*)$/,
  /^(lc_messages|lc_monetary|lc_numeric|lc_time|log_.*|logging_collector|event_source)$/,
  /^(archive_.*|restore_command|primary_.*|recovery_.*|hot_standby.*|promote_trigger_file)$/,
  /^(dynamic_library_path|application_name)$/,
];

export function isEnvironmentSpecific(name: string): boolean {
  return ENVIRONMENT_SPECIFIC.some((pattern) => pattern.test(name));
}

/** "work_mem: source 64MB, target 4MB" for every source parameter whose value differs on the target. */
export function parameterDifferences(
  source: readonly ParameterValue[],
  target: ReadonlyMap<string, ParameterValue>,
): string[] {
  const out: string[] = [];
  for (const param of source) {
    if (isEnvironmentSpecific(param.name)) continue;
    const there = target.get(param.name);
    if (!there) {
      out.push(`${param.name}: source ${param.display}, target (not supported)`);
    } else if (there.setting !== param.setting || there.unit !== param.unit) {
      out.push(`${param.name}: source ${param.display}, target ${there.display}`);
    }
  }
  return out;
}
