// What the provider prints while it waits: one line per visible change, which the Pulumi CLI
// shows as diagnostics (sent through the engine's Log RPC inside Pulumi's dynamic-provider
// host, see hostDiagnostics; plain stdout elsewhere).
import path from "node:path";
import type { MigrationOutputs, ValidationReport } from "../spec/types";

/** Where provider diagnostics go. */
export interface ProviderLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * Plain stdout. `pulumi.log` would end up there too inside the dynamic-provider host: the SDK's
 * logger there has no engine connection and falls back to console output.
 */
export const diagnostics: ProviderLog = {
  info: (message) => process.stdout.write(`${message}\n`),
  warn: (message) => process.stdout.write(`warning: ${message}\n`),
};

/** A ProviderLog whose messages have all been delivered once `flush()` resolves. */
export interface FlushingLog extends ProviderLog {
  flush(): Promise<void>;
}

/** The engine address Pulumi's dynamic-provider host was started with (its first argument). */
function hostEngineAddress(): string | undefined {
  const [, script, address] = process.argv;
  if (!script || !/dynamic-provider/.test(script)) return undefined;
  return address && /^[\w.:[\]-]+:\d+$/.test(address) ? address : undefined;
}

/** Pulumi's generated engine client and its LogRequest, loaded once. */
interface EngineBinding {
  client: { log(request: unknown, done: (err: Error | null) => void): void };
  LogRequest: new () => Record<string, (v: unknown) => void>;
  severity: { INFO: number; WARNING: number };
}

/**
 * Diagnostics inside Pulumi's dynamic-provider host, through the engine's Log RPC: stdout lines
 * of a plugin reach the CLI only when it is still reading them, so a line printed by a quick
 * `diff` during `pulumi preview` is lost; a Log call acknowledged before the method returns is
 * not. Outside the host (or if the RPC fails) messages go to stdout.
 */
export function hostDiagnostics(): FlushingLog {
  // One engine connection per process, whatever the number of provider calls.
  return (sharedHostLog ??= connectHostLog());
}

let sharedHostLog: FlushingLog | undefined;

function connectHostLog(): FlushingLog {
  const address = hostEngineAddress();
  if (!address) return { ...diagnostics, flush: async () => undefined };
  let binding: EngineBinding | undefined;
  const bind = (): EngineBinding => {
    if (binding) return binding;
    // Pulumi's own generated client and gRPC library, as the SDK's pulumi.log uses them.
    const pulumiDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
    const grpc = require(require.resolve("@grpc/grpc-js", { paths: [pulumiDir] }));
    const rpc = require(path.join(pulumiDir, "proto/engine_grpc_pb.js"));
    const pb = require(path.join(pulumiDir, "proto/engine_pb.js"));
    const client = new rpc.EngineClient(address, grpc.credentials.createInsecure());
    return (binding = { client, LogRequest: pb.LogRequest, severity: pb.LogSeverity });
  };
  let last: Promise<void> = Promise.resolve();
  const send = (severity: "INFO" | "WARNING", message: string): void => {
    const fallback = (): void => diagnostics[severity === "INFO" ? "info" : "warn"](message);
    last = last.then(
      () =>
        new Promise<void>((resolve) => {
          try {
            const engine = bind();
            const request = new engine.LogRequest();
            request.setSeverity(engine.severity[severity]);
            request.setMessage(message);
            request.setUrn("");
            engine.client.log(request, (err) => {
              if (err) fallback();
              resolve();
            });
          } catch {
            fallback();
            resolve();
          }
        }),
    );
  };
  return {
    info: (message) => send("INFO", message),
    warn: (message) => send("WARNING", message),
    flush: () => last,
  };
}

/** A log that drops everything (tests that only look at data). */
export const silent: ProviderLog = { info: () => undefined, warn: () => undefined };

/** "latency 0.4 s", "latency 12 s", or "latency not measured yet". */
export function latency(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "latency not measured yet";
  return `latency ${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
}

/** "MigratingData: tables 3/10 done (1 loading), 120 changes applied, latency 0.4 s". */
export function progressLine(o: MigrationOutputs): string {
  const dbs = Object.values(o.dbDetails);
  const done = dbs.reduce((n, d) => n + d.fullLoadCompletedTables, 0);
  const total = dbs.reduce(
    (n, d) =>
      n +
      d.fullLoadQueuedTables +
      d.fullLoadLoadingTables +
      d.fullLoadCompletedTables +
      d.fullLoadErroredTables,
    0,
  );
  const loading = dbs.reduce((n, d) => n + d.fullLoadLoadingTables, 0);
  const errored = dbs.reduce((n, d) => n + d.fullLoadErroredTables, 0);
  const applied = dbs.reduce((n, d) => n + d.appliedChanges, 0);
  const parts = [`${o.state}/${o.substate}`];
  if (total > 0) {
    const extra = [loading ? `${loading} loading` : "", errored ? `${errored} errored` : ""]
      .filter(Boolean)
      .join(", ");
    parts.push(`tables ${done}/${total} done${extra ? ` (${extra})` : ""}`);
  }
  // Replication figures once there is replication to speak of.
  const replicating = o.state === "WaitingForUserAction" || o.substate === "CompletingMigration";
  if (o.migrationMode === "Online" && (replicating || applied > 0 || o.latencySeconds !== null)) {
    parts.push(`${applied.toLocaleString("en-US")} changes applied`, latency(o.latencySeconds));
  }
  return parts.join(", ");
}

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
  return (o) => {
    const line = progressLine(o);
    const key = line.replace(/, [\d,]+ changes applied, latency .*$/, "");
    const now = Date.now();
    if (key === lastKey && now - lastAt < quietMs) return;
    lastKey = key;
    lastAt = now;
    log.info(`pgmigrate ${name}: ${line}`);
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
