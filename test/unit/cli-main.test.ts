// The pgmigrate binary's usage errors: caught before any connection, one line, exit code 2; a
// server that cannot be reached: exit code 3.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { OWN_KEYS } from "../../provider/cli/properties";

const MAIN = path.resolve(__dirname, "../../provider/cli/main.js");
const VERSION: string = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, "../../../package.json"), "utf8"),
).version;
// Port 1 refuses connections: a test that reached the network would fail with exit code 3.
const SERVER = "postgresql://admin:url-secret@127.0.0.1:1/postgres";

function pgmigrate(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, PGPASSFILE: "/nonexistent", PGMIGRATE_SOURCE_PASSWORD: "env-secret" },
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

function usage(args: string[], pattern: RegExp): void {
  const res = pgmigrate(args);
  assert.equal(res.code, 2, `${args.join(" ")} → ${res.code}: ${res.stderr}`);
  assert.equal(res.stdout, "");
  const lines = res.stderr.trim().split("\n");
  assert.equal(lines.length, 1, res.stderr);
  assert.match(lines[0], pattern);
  assert.ok(!res.stderr.includes("url-secret") && !res.stderr.includes("env-secret"));
}

describe("pgmigrate usage errors", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-main-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, text: string): string => {
    const full = path.join(dir, name);
    fs.writeFileSync(full, text);
    return full;
  };
  const create = (props: string, ...more: string[]): string[] => [
    "create",
    "--server",
    SERVER,
    "--migration-name",
    "m1",
    "--properties",
    props,
    ...more,
  ];

  it("prints help with exit code 0", () => {
    const res = pgmigrate(["--help"]);
    assert.equal(res.code, 0);
    for (const command of [
      "create",
      "list",
      "show",
      "update",
      "check-name-availability",
      "watch",
      "runtime",
    ]) {
      assert.match(res.stdout, new RegExp(`\\b${command}\\b`));
    }
  });

  it("--help lists every properties key, the password variables, the exit codes and an example", () => {
    const res = pgmigrate(["--help"]);
    assert.equal(res.code, 0);
    for (const key of [...OWN_KEYS, "SourceDBServerResourceId", "TargetServerPassword"]) {
      assert.ok(res.stdout.includes(key), `--help names ${key}`);
    }
    for (const variable of [
      "PGMIGRATE_SOURCE_PASSWORD",
      "PGMIGRATE_TARGET_PASSWORD",
      "PGPASSWORD",
      "PGPASSFILE",
    ]) {
      assert.ok(res.stdout.includes(variable), variable);
    }
    for (const code of [0, 1, 2, 3]) assert.match(res.stdout, new RegExp(`^  ${code}  \\w`, "m"));
    assert.match(res.stdout, /Example:\n\s+.*\n\s+pgmigrate create --server postgresql:\/\//);
    const version = pgmigrate(["--version"]);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), VERSION);
  });

  it("names the flag when a flag's value is wrong", () => {
    const ok = file(
      "flags.json",
      JSON.stringify({ SourceDBServerResourceId: "src:5432@u", DBsToMigrate: ["a"] }),
    );
    usage(
      create(ok, "--migration-mode", "live"),
      /^pgmigrate: --migration-mode must be Offline or Online, not "live"$/,
    );
    usage(
      create(ok, "--migration-option", "Copy"),
      /^pgmigrate: --migration-option must be one of Validate, Migrate, ValidateAndMigrate, not "Copy"$/,
    );
    usage(
      ["show", "--server", SERVER, "--migration-name", "m1", "--output", "yaml"],
      /--output must be one of text, json, azure/,
    );
  });

  it("suggests the key meant, and says which type a value should have", () => {
    usage(
      create(
        file(
          "typo.json",
          JSON.stringify({
            SourceDBServerResourceId: "src@u",
            DBsToMigrat: ["a"],
            verfy: "none",
            parallelism: { tabels: 2 },
          }),
        ),
      ),
      /unknown properties "DBsToMigrat" \(did you mean "DBsToMigrate"\?\), "verfy" \(did you mean "verify"\?\), "parallelism.tabels" \(did you mean "tables"\?\)/,
    );
    usage(
      create(
        file(
          "types.json",
          JSON.stringify({
            SourceDBServerResourceId: "src@u",
            DBsToMigrate: ["a"],
            parallelism: { tables: "four" },
            verify: 3,
          }),
        ),
      ),
      /parallelism\.tables: must be a number, not a string; verify: verify must be one of "snapshot"/,
    );
  });

  it("rejects missing and unknown options and commands", () => {
    usage(["show", "--server", SERVER], /required option '--migration-name <name>' not specified/);
    usage(["list"], /required option '--server <url>' not specified/);
    usage(["list", "--server", SERVER, "--colour"], /unknown option '--colour'/);
    usage(["migrate"], /unknown command 'migrate'/);
    usage(
      ["update", "--server", SERVER, "--migration-name", "m1", "--cutover", "--cancel"],
      /cannot be used with/,
    );
  });

  it("rejects bad names, URLs and filters", () => {
    usage(["show", "--server", SERVER, "--migration-name", "-bad"], /must not start with a hyphen/);
    usage(["show", "--server", "mysql://db", "--migration-name", "m1"], /libpq URL/);
    usage(["list", "--server", SERVER, "--filter", "Some"], /--filter must be Active or All/);
  });

  it("rejects bad properties files before connecting", () => {
    usage(create(path.join(dir, "missing.json")), /cannot read properties file .*missing\.json/);
    usage(
      create(file("bad.json", '{"DBsToMigrate": ["a" "b"]}')),
      /bad\.json:1:23: malformed JSON/,
    );
    usage(
      create(file("unknown.json", '{"Colour": 1, "DBsToMigrate": ["a"]}')),
      /unknown property "Colour"/,
    );
    const ok = JSON.stringify({ SourceDBServerResourceId: "src:5432@u", DBsToMigrate: ["a"] });
    usage(
      create(file("mode.json", ok), "--migration-mode", "sideways"),
      /^pgmigrate: --migration-mode must be Offline or Online, not "sideways"$/m,
    );
    usage(
      create(
        file(
          "cut.json",
          JSON.stringify({ SourceDBServerResourceId: "src@u", DBsToMigrate: ["a"], Cutover: true }),
        ),
      ),
      /cutover applies to Online migrations only/,
    );
  });

  it("reports an unreachable server with exit code 3, in plain words, no password", () => {
    for (const args of [
      ["show", "--server", SERVER, "--migration-name", "m1"],
      ["list", "--server", SERVER],
      ["update", "--server", SERVER, "--migration-name", "m1", "--cancel"],
      ["delete", "--server", SERVER, "--migration-name", "m1"],
    ]) {
      const res = pgmigrate(args);
      assert.equal(res.code, 3, `${args[0]}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split("\n").length, 1);
      assert.match(
        res.stderr,
        /^pgmigrate: cannot reach the server 127\.0\.0\.1:1: connection refused/,
      );
      assert.ok(!/ECONNREFUSED|control store/.test(res.stderr), res.stderr);
      assert.ok(!res.stderr.includes("url-secret"));
    }
  });
});
