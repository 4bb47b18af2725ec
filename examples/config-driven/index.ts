// The migration definition alongside infrastructure: a Pulumi program whose stack config
// declares one PostgresMigration, every input of it (config.ts). Copy both files into your own
// stack; there, import from "pulumi-postgres-migration" instead of "../../sdk". Built to
// dist/examples/config-driven/index.js (Pulumi.yaml `main`).
import * as pulumi from "@pulumi/pulumi";
import { PostgresMigration, validationSummary } from "../../sdk";
import { migrationArgs } from "./config";

const config = new pulumi.Config();
const migration = new PostgresMigration(config.get("name") ?? "migration", migrationArgs(config));

export const migrationName = migration.migrationName;
export const state = migration.state;
export const substate = migration.substate;
export const latencySeconds = migration.latencySeconds;
export const dbDetails = migration.dbDetails;
export const verification = migration.verification;
// The resource's `validation` output keeps every check; the stack shows the status and only
// the checks that failed or warned (`pulumi stack output validationProblems`).
const summary = migration.validation.apply(validationSummary);
export const validationStatus = summary.validationStatus;
export const validationProblems = summary.problems;
