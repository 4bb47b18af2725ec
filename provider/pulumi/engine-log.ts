// The one way provider diagnostics reach the Pulumi CLI: the engine's Log RPC, called from inside
// Pulumi's dynamic-provider host, with plain stdout as the single fallback.
//
// Supported @pulumi/pulumi: SUPPORTED_PULUMI_VERSIONS (the package's peerDependency). The SDK has
// no public API for this (its `pulumi.log` has no engine connection inside the host), so the
// transport relies on these private parts of the installed @pulumi/pulumi, all checked by
// test/unit/pulumi-engine-log.test.ts:
//   - `cmd/dynamic-provider/index.js` is started as `node <that script> <engine address> …`;
//   - `proto/engine_grpc_pb.js` exports `EngineClient` (generated, with a `log` method);
//   - `proto/engine_pb.js` exports `LogRequest` (setSeverity/setMessage/setUrn) and `LogSeverity`;
//   - `@grpc/grpc-js` resolves from the package's folder (its `credentials.createInsecure`).
import path from "node:path";

/** The @pulumi/pulumi versions whose private paths this module was checked against. */
export const SUPPORTED_PULUMI_VERSIONS = "^3.248.0";

/** The private files of @pulumi/pulumi the transport loads, relative to its package folder. */
export const PULUMI_PRIVATE_PATHS = {
  host: "cmd/dynamic-provider/index.js",
  engineClient: "proto/engine_grpc_pb.js",
  engineMessages: "proto/engine_pb.js",
} as const;

/** How the CLI shows a diagnostic (Pulumi's LogSeverity, without debug). */
export type Severity = "info" | "warning" | "error";

/** Where provider diagnostics go: to the engine, attached to `urn` (the stack without one). */
export interface EngineLog {
  log(severity: Severity, message: string, urn?: string): void;
  /** Resolves once every message logged so far has been delivered (or written to stdout). */
  flush(): Promise<void>;
}

/**
 * Plain stdout, where a plugin's lines reach the CLI only while it still reads them. Used outside
 * the host and whenever the engine cannot be reached.
 */
export const stdoutLog: EngineLog = {
  log: (severity, message) =>
    process.stdout.write(`${severity === "info" ? "" : `${severity}: `}${message}\n`),
  flush: async () => undefined,
};

/** The engine address the dynamic-provider host was started with (its first argument). */
export function hostEngineAddress(argv: readonly string[] = process.argv): string | undefined {
  const [, script, address] = argv;
  if (!script || !/dynamic-provider/.test(script)) return undefined;
  return address && /^[\w.:[\]-]+:\d+$/.test(address) ? address : undefined;
}

/** The generated engine client and messages of the installed @pulumi/pulumi. */
export interface EngineBinding {
  readonly client: {
    log(request: unknown, done: (err: Error | null) => void): void;
    close(): void;
  };
  readonly LogRequest: new () => {
    setSeverity(value: number): void;
    setMessage(value: string): void;
    setUrn(value: string): void;
  };
  readonly severity: Readonly<Record<"INFO" | "WARNING" | "ERROR", number>>;
}

const SEVERITY_NAMES: Readonly<Record<Severity, "INFO" | "WARNING" | "ERROR">> = {
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
};

/** The folder of the @pulumi/pulumi this package resolves (the host's, as it is a peer). */
export function pulumiPackageDir(): string {
  return path.dirname(require.resolve("@pulumi/pulumi/package.json"));
}

/** Loads Pulumi's own generated engine client for `address`, as the SDK's pulumi.log does. */
export function bindEngine(address: string, pulumiDir = pulumiPackageDir()): EngineBinding {
  const grpc = require(require.resolve("@grpc/grpc-js", { paths: [pulumiDir] }));
  const rpc = require(path.join(pulumiDir, PULUMI_PRIVATE_PATHS.engineClient));
  const pb = require(path.join(pulumiDir, PULUMI_PRIVATE_PATHS.engineMessages));
  const client = new rpc.EngineClient(address, grpc.credentials.createInsecure());
  return { client, LogRequest: pb.LogRequest, severity: pb.LogSeverity };
}

/**
 * A log that sends to the engine at `address`, in order; a message the engine does not
 * acknowledge goes to stdout instead. The binding is loaded on the first message.
 */
export function connectEngineLog(address: string, bind = () => bindEngine(address)): EngineLog {
  let binding: EngineBinding | undefined;
  let last: Promise<void> = Promise.resolve();
  const deliver = (severity: Severity, message: string, urn: string | undefined) =>
    new Promise<void>((resolve) => {
      const fallback = (): void => {
        stdoutLog.log(severity, message);
        resolve();
      };
      try {
        binding ??= bind();
        const request = new binding.LogRequest();
        request.setSeverity(binding.severity[SEVERITY_NAMES[severity]]);
        request.setMessage(message);
        request.setUrn(urn ?? "");
        binding.client.log(request, (err) => (err ? fallback() : resolve()));
      } catch {
        fallback();
      }
    });
  return {
    log: (severity, message, urn) => {
      last = last.then(() => deliver(severity, message, urn));
    },
    flush: () => last,
  };
}

let shared: EngineLog | undefined;

/**
 * The engine log of this process: one engine connection inside the dynamic-provider host,
 * whatever the number of provider calls; stdout anywhere else.
 */
export function engineLog(): EngineLog {
  if (shared) return shared;
  const address = hostEngineAddress();
  return (shared = address ? connectEngineLog(address) : stdoutLog);
}
