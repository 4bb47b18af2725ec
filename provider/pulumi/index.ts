// The Pulumi dynamic ResourceProvider of PostgresMigration: a thin adapter that Pulumi serializes
// into the state and runs in its dynamic-provider host. The methods capture only two strings, the
// remembered passwords and the resource's URN; the implementation (and the engine) is loaded when
// a method runs.
import type * as pulumi from "@pulumi/pulumi";
import type { ProviderImplementation } from "./operations";
import type { Credentials } from "./state";

export type { ProviderImplementation } from "./operations";
export type { Credentials, PasswordFingerprint, ResourceState } from "./state";
export type { RuntimeOptions } from "../spec/types";

/** The package entry the serialized methods load, resolved from the Pulumi project's node_modules. */
export const PROVIDER_ENTRY = "pulumi-postgres-migration/provider";

/**
 * Yields the passwords read and delete need (they see only the state, never the inputs). In the
 * SDK this is a secret `Output<Credentials>`: captured by the serialized provider, it makes the
 * provider text a secret, so the passwords are stored encrypted like the inputs themselves.
 */
export interface RememberedCredentials {
  get(): Credentials | undefined;
}

/**
 * Yields the URN of the resource the provider serves. The dynamic-provider host (3.248) does not
 * pass the URN of a request to the provider's methods, so the SDK captures it (an
 * `Output<string>` from `pulumi.createUrn`) and the diagnostics are attached to the resource.
 */
export interface ResourceUrn {
  get(): string | undefined;
}

/**
 * The provider Pulumi runs: inputs as written in the program (after `check`), outputs the
 * resource state (`object`: what an older version stored is read back as it is).
 */
export type MigrationProvider = pulumi.dynamic.ResourceProvider<Record<string, unknown>, object>;

/**
 * The dynamic provider for one resource; `remembered` supplies passwords to read and delete,
 * `urn` the resource its diagnostics belong to (the stack's without it).
 */
export function createMigrationProvider(
  remembered?: RememberedCredentials,
  urn?: ResourceUrn,
): MigrationProvider {
  const packageEntry = PROVIDER_ENTRY;
  // The serialized text runs as a module without a file name: only node_modules under the
  // project directory can resolve the package. Where it isn't installed there (this repository's
  // own examples and tests), the compiled entry on the machine that ran the program is used.
  const localEntry = __filename;

  function implementation(): ProviderImplementation {
    let entry: { loadImplementation(urn?: string): ProviderImplementation };
    try {
      entry = require(packageEntry);
    } catch (err) {
      if ((err as { code?: string }).code !== "MODULE_NOT_FOUND") throw err;
      try {
        entry = require(localEntry);
      } catch (fallbackErr) {
        throw new Error(
          `cannot load ${packageEntry}: install pulumi-postgres-migration in the Pulumi project ` +
            `(npm install pulumi-postgres-migration); ${(fallbackErr as Error).message}`,
        );
      }
    }
    return entry.loadImplementation(urn?.get());
  }

  return {
    check: (olds, news) => implementation().check(olds, news),
    diff: (id, olds, news) => implementation().diff(id, olds, news),
    create: (inputs) => implementation().create(inputs),
    read: (id, props) => implementation().read(id, props ?? {}, remembered?.get()),
    update: (id, olds, news) => implementation().update(id, olds, news),
    delete: async (id, props) => {
      await implementation().delete(id, props, remembered?.get());
    },
  };
}

/**
 * Called by the serialized methods through {@link PROVIDER_ENTRY}: loads the implementation and,
 * with it, the engine. Nothing else loads them, so the SDK stays light. Diagnostics go to the
 * resource `urn` (providers serialized by older versions pass none: the stack's).
 */
export function loadImplementation(urn?: string): ProviderImplementation {
  const lifecycle = require("./operations") as typeof import("./operations");
  const progress = require("./diagnostics") as typeof import("./diagnostics");
  const transport = require("./engine-log") as typeof import("./engine-log");
  const log = transport.engineLog();
  const impl = lifecycle.providerImplementation(progress.resourceLog(log, urn || undefined));
  // Every method returns only once its diagnostics reached the engine.
  const flushed =
    <A extends unknown[], R>(method: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await method(...args);
      } finally {
        await log.flush();
      }
    };
  return {
    check: flushed(impl.check),
    diff: flushed(impl.diff),
    create: flushed(impl.create),
    read: flushed(impl.read),
    update: flushed(impl.update),
    delete: flushed(impl.delete),
  };
}
