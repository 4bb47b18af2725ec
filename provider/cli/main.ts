#!/usr/bin/env node
// pgmigrate: the command line (mirrors `az postgres flexible-server migration`). Parses the
// arguments with commander, runs one command, and maps every outcome to exit code 0, 1, 2 or 3.
import fs from "node:fs";
import path from "node:path";
import { Command, CommanderError, Option } from "commander";
import {
  checkNameCommand,
  createCommand,
  deleteCommand,
  listCommand,
  showCommand,
  updateCommand,
} from "./commands";
import { openContext, type CliContext } from "./context";
import { runtimeCommand } from "./runtime";
import { serveCommand } from "./serve";
import { describeFailure, EXIT_CODES_HELP, EXIT_USAGE } from "./usage";
import { watchCommand } from "./watch";

function packageVersion(): string {
  try {
    const file = path.join(__dirname, "..", "..", "..", "package.json");
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { version?: string }).version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** Passwords the process may know of before any command looks: all are redacted from errors. */
function environmentSecrets(env: NodeJS.ProcessEnv): string[] {
  return [env.PGMIGRATE_SOURCE_PASSWORD, env.PGMIGRATE_TARGET_PASSWORD, env.PGPASSWORD].filter(
    (p): p is string => typeof p === "string" && p.length > 0,
  );
}

type Handler<O> = (ctx: CliContext, opts: O) => Promise<number>;

/** What `--help` adds after the commands: the properties file, passwords, exit codes, an example. */
const HELP_AFTER = `
Properties file (create --properties FILE.json), the reference service's keys:
  SourceDBServerResourceId "host:port@user", SecretParameters.AdminCredentials.
  {SourceServerPassword,TargetServerPassword}, DBsToMigrate, OverwriteDBsInTarget,
  SourceType, SslMode, MigrationMode, MigrationOption, TriggerCutover, MigrateRoles
and this project's own: migrationName, source, target, databases, mode, option,
  overwriteDbsInTarget, cutover, parallelism {tables, indexes, splitTablesLargerThan},
  migrateRoles, fixReplicaIdentity ("full"), verify (snapshot|counts|checksum|none), controlDatabase,
  runtime {kind, logDir}

Passwords:
  source  PGMIGRATE_SOURCE_PASSWORD, the properties file, or the password file
  target  the --server URL, the properties file, PGMIGRATE_TARGET_PASSWORD, PGPASSWORD,
          or the password file (~/.pgpass, PGPASSFILE)

Exit codes:
${EXIT_CODES_HELP}

Example:
  export PGMIGRATE_SOURCE_PASSWORD=... PGPASSWORD=...
  pgmigrate create --server postgresql://admin@target:5432/postgres --migration-name orders \\
    --migration-mode Online --properties migration.json --wait
  pgmigrate update --server postgresql://admin@target:5432/postgres --migration-name orders \\
    --cutover --wait`;

/** Builds the program; `finish` receives the exit code of the command that ran. */
export function buildProgram(
  env: NodeJS.ProcessEnv,
  secrets: string[],
  finish: (code: number) => void,
): Command {
  const program = new Command("pgmigrate")
    .description("Migrate PostgreSQL databases offline or online (logical replication).")
    .version(packageVersion())
    .exitOverride()
    .configureOutput({
      // One line, in the same voice as every other error of the tool.
      outputError: (text, write) => write(`pgmigrate: ${text.replace(/^error: /, "")}`),
    })
    .showSuggestionAfterError(true)
    .addHelpText("after", HELP_AFTER);

  const server = (): Option =>
    new Option(
      "--server <url>",
      "target server as a libpq URL, e.g. postgresql://user@host:5432/postgres (the path is the control database)",
    ).makeOptionMandatory();
  const name = (required = true): Option => {
    const option = new Option(
      "--migration-name <name>",
      "migration name (lowercase letters, digits, hyphens)",
    );
    return required ? option.makeOptionMandatory() : option;
  };
  const json = (): Option =>
    new Option("--json", "print the migration's output object as JSON and nothing else");
  const wait = (): Option =>
    new Option("--wait", "block until the migration needs the user (cutover) or ended");
  const run =
    <O>(handler: Handler<O>) =>
    async (opts: O & { server: string }): Promise<void> => {
      // Commands add the passwords they learn (properties file, password file) to `secrets`.
      const ctx = openContext(opts.server, env, secrets);
      finish(await handler(ctx, opts));
    };

  program
    .command("create")
    .description("create and start a migration")
    .addOption(server())
    .addOption(name())
    .option("--migration-mode <mode>", "Offline (default) or Online")
    .option("--migration-option <option>", "Validate, Migrate or ValidateAndMigrate (default)")
    .option(
      "--split-tables-larger-than <size>",
      "copy tables larger than this on disk in block ranges, in parallel (bytes, or kB/MB/GB; default 1GB)",
    )
    .requiredOption(
      "--properties <file>",
      "migration properties (JSON, reference service format or ours)",
    )
    .addOption(wait())
    .addOption(json())
    .action(run(createCommand));
  program
    .command("list")
    .description("list the migrations of a target server, newest first")
    .addOption(server())
    .option("--filter <filter>", "Active or All", "Active")
    .addOption(json())
    .action(run(listCommand));
  program
    .command("show")
    .description("show a migration's state, progress, validation and verification")
    .addOption(server())
    .addOption(name())
    .addOption(json())
    .option(
      "--output <format>",
      "text (default), json (as --json) or azure (the shape of az postgres flexible-server migration show)",
    )
    .option(
      "--units",
      "also list the work units (tables, ranges, snapshots, streams) and their runtimes",
    )
    .action(run(showCommand));
  program
    .command("delete")
    .description(
      "remove an ended migration's record so its name can be reused (never touches data)",
    )
    .addOption(server())
    .addOption(name())
    .action(run(deleteCommand));
  program
    .command("update")
    .description("trigger the cutover of an online migration, or cancel a migration")
    .addOption(server())
    .addOption(name())
    .addOption(new Option("--cutover", "cut over (online migrations)").conflicts("cancel"))
    .addOption(new Option("--cancel", "cancel and roll the target back").conflicts("cutover"))
    .addOption(wait())
    .addOption(json())
    .action(run(updateCommand));
  program
    .command("check-name-availability")
    .description("check whether a migration name is free on the target server")
    .addOption(server())
    .addOption(name())
    .addOption(json())
    .action(run(checkNameCommand));
  program
    .command("watch")
    .description("live progress bars during the copy, latency and counters during replication")
    .addOption(server())
    .addOption(name())
    .action(run(watchCommand));
  program
    .command("runtime")
    .description(
      "run the migration worker: one migration, or (without --migration-name) a pool runtime serving every claimable one and sharing the copy of pool migrations",
    )
    .addOption(server())
    .addOption(name(false))
    .option(
      "--heartbeat-file <path>",
      "touch this file at every heartbeat (3 s), for a container's liveness probe",
    )
    .option(
      "--copy-units <n>",
      "copy units (tables, ranges) this runtime runs at once; 0: it only coordinates and streams (default: each migration's parallelism.tables)",
    )
    .action(run(runtimeCommand));
  program
    .command("serve")
    .description(
      "serve the web console (grid, details, create, cutover, cancel) for the migrations on the target server",
    )
    .addOption(server())
    .option(
      "--listen <host:port>",
      "address to listen on (loopback unless TLS or --insecure)",
      "127.0.0.1:7432",
    )
    .option("--tls-cert <file>", "PEM certificate: serve HTTPS")
    .option("--tls-key <file>", "PEM private key of --tls-cert")
    .option("--insecure", "allow a non-loopback --listen without TLS (warns)")
    .action(run(serveCommand));
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and exits with the command's exit code. */
export async function main(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<never> {
  const secrets = environmentSecrets(env);
  let exitCode = 0;
  const program = buildProgram(env, secrets, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its one-line message (or the help/version text).
      exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
    } else {
      const failure = describeFailure(err, secrets);
      process.stderr.write(failure.line + "\n");
      if (failure.stack && env.PGMIGRATE_DEBUG) process.stderr.write(failure.stack + "\n");
      exitCode = failure.exitCode;
    }
  }
  process.exit(exitCode);
}

if (require.main === module) void main(process.argv);
