// The provider as Pulumi ships it: the SDK's provider serialized with serializeFunction, loaded
// the way the dynamic-provider host loads it (require-from-string) in a fresh Node process, and
// used to migrate a database, then refresh and delete it with only the remembered passwords.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { migrationProvider } from "../../sdk/postgres-migration";
import { compareDatabases } from "../support/checksum";
import { loadFixture } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";

const REPO = path.resolve(__dirname, "../../..");

// What the host does with the `__provider` input, then the calls of one `pulumi up`/`destroy`.
const HOST_SCRIPT = `
const fs = require("node:fs");
const requireFromString = require(process.env.RFS);
(async () => {
  const provider = requireFromString(fs.readFileSync(process.env.PROVIDER_FILE, "utf8")).handler();
  const steps = JSON.parse(process.env.STEPS);
  const inputs = JSON.parse(process.env.INPUTS || "{}");
  const out = {};
  let state = JSON.parse(process.env.STATE || "null");
  for (const step of steps) {
    if (step === "check") out.check = await provider.check({}, inputs);
    if (step === "create") { out.create = await provider.create(inputs); state = out.create.outs; }
    if (step === "read") out.read = await provider.read(inputs.migrationName || state.migrationName, state);
    if (step === "delete") { await provider.delete(state.migrationName, state); out.deleted = true; }
  }
  out.state = state;
  out.engineFrom = Object.keys(require.cache).filter((f) => f.endsWith("/provider/api/index.js"));
  process.stdout.write("RESULT " + JSON.stringify(out) + "\\n");
})().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
`;

interface HostResult {
  check?: { failures: unknown[] };
  create?: { id: string; outs: Record<string, unknown> };
  read?: { id?: string; props?: Record<string, unknown> };
  deleted?: boolean;
  state: Record<string, unknown>;
  engineFrom: string[];
}

/** Runs the serialized provider in a fresh process; no password in its environment. */
function runHost(
  cwd: string,
  providerFile: string,
  env: Record<string, string>,
): Promise<HostResult> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^PG|^PGMIGRATE_/.test(k)),
  );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", HOST_SCRIPT], {
      cwd,
      env: {
        ...clean,
        ...env,
        PROVIDER_FILE: providerFile,
        RFS: require.resolve("require-from-string", { paths: [REPO] }),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || !line) {
        reject(new Error(`host exited ${code}:\n${stdout}\n${stderr}`));
        return;
      }
      resolve(JSON.parse(line.slice("RESULT ".length)) as HostResult);
    });
  });
}

describe("serialized provider in a fresh process", function () {
  const name = `prov-serial-${randomBytes(3).toString("hex")}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let text: string;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-serialize-"));
    await loadFixture(source, "ledger", { rows: 100 });
    const endpoint = (s: PgServer) => ({
      host: s.host,
      port: s.port,
      username: s.user,
      password: pulumi.secret(s.password),
      sslMode: "disable" as const,
    });
    const provider = migrationProvider({
      source: endpoint(source),
      target: endpoint(target),
      databases: ["ledger"],
    });
    const serialized = await pulumi.runtime.serializeFunction(() => provider, {
      allowSecrets: true,
    });
    assert.ok(serialized.containsSecrets, "the remembered passwords make it a secret");
    text = serialized.text;
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const inputs = (): Record<string, unknown> => ({
    source: {
      host: source.host,
      port: source.port,
      username: source.user,
      password: source.password,
      sslMode: "disable",
    },
    target: {
      host: target.host,
      port: target.port,
      username: target.user,
      password: target.password,
      sslMode: "disable",
    },
    databases: ["ledger"],
    migrationName: name,
    runtime: { logDir: dir },
    __provider: "(the text itself)",
  });

  it("is small and captures no module", () => {
    assert.ok(text.length < 50_000, `${text.length} characters`);
    assert.match(text, /require\(packageEntry\)/);
    assert.ok(!/withControl|installControlSchema|migrationInputSchema|pg-copy-streams/.test(text));
    // Loads nothing but the package entry (or its fallback): no module captured at all.
    const requires = new Set(text.match(/require\([^)]*\)/g));
    assert.deepEqual([...requires].sort(), ["require(localEntry)", "require(packageEntry)"]);
  });

  it("migrates a database from this repository's checkout (fallback entry)", async () => {
    const file = path.join(dir, "provider-repo.js");
    fs.writeFileSync(file, text);
    const result = await runHost(REPO, file, {
      STEPS: JSON.stringify(["check", "create", "read"]),
      INPUTS: JSON.stringify(inputs()),
    });
    assert.deepEqual(result.check?.failures, []);
    assert.equal(result.create?.id, name);
    assert.equal(result.create?.outs.state, "Succeeded");
    assert.equal(result.read?.props?.state, "Succeeded", "read used the remembered passwords");
    assert.deepEqual(result.engineFrom, [path.join(REPO, "dist/provider/api/index.js")]);
    const comparison = await compareDatabases(source, "ledger", target, "ledger");
    assert.deepEqual(comparison.differences, []);
    fs.writeFileSync(path.join(dir, "state.json"), JSON.stringify(result.state));
  });

  it("resolves the package by name in a project that installed it, and deletes with remembered passwords", async () => {
    // A user's project: the package in node_modules; the checkout path baked into the text is gone.
    const project = path.join(dir, "project");
    fs.mkdirSync(path.join(project, "node_modules"), { recursive: true });
    fs.symlinkSync(REPO, path.join(project, "node_modules", "pulumi-postgres-migration"), "dir");
    const localEntry = path.join(REPO, "dist/provider/pulumi/index.js");
    assert.ok(text.includes(JSON.stringify(localEntry)));
    const file = path.join(dir, "provider-user.js");
    fs.writeFileSync(file, text.split(JSON.stringify(localEntry)).join('"/nonexistent/index.js"'));
    const result = await runHost(project, file, {
      STEPS: JSON.stringify(["read", "delete"]),
      STATE: fs.readFileSync(path.join(dir, "state.json"), "utf8"),
    });
    assert.equal(result.read?.props?.state, "Succeeded");
    assert.equal(result.deleted, true);
    const rows = await target.query("SELECT 1 FROM pgmigrate.migrations WHERE name = $1", [name]);
    assert.equal(rows.length, 0, "forgotten");
    assert.ok((await compareDatabases(source, "ledger", target, "ledger")).equal, "data kept");
  });
});
