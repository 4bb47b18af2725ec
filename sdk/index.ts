// Public API of pulumi-postgres-migration: the PostgresMigration resource, its arguments and
// the types of its outputs, and the MigrationRuntime component. Loading it never loads the
// migration engine, nor @pulumi/kubernetes (loaded only when a MigrationRuntime is declared).
export { PostgresMigration } from "./postgres-migration";
export {
  defaultRuntimeImage,
  MigrationRuntime,
  type MigrationRuntimeArgs,
  type RuntimeResourcesArgs,
} from "./runtime";
export type { EndpointArgs, ParallelismArgs, PostgresMigrationArgs, RuntimeArgs } from "./args";
export { validationSummary, type ValidationProblem, type ValidationSummary } from "./summary";
export type {
  CheckResult,
  CheckState,
  DatabaseValidation,
  DbDetails,
  MigrationMode,
  MigrationOption,
  MigrationOutputs,
  MigrationState,
  MigrationSubstate,
  SslMode,
  TableVerification,
  ValidationReport,
  VerificationReport,
  MigrationEvent,
  RuntimeOutput,
  VerifyMode,
} from "../provider/spec/types";
