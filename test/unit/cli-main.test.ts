// The pgmigrate binary's usage errors: caught before any connection, one line, exit code 2.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const MAIN = path.resolve(__dirname, "../../provider/cli/main.js");
// Port 1 refuses connections: a test that reached the network would fail with exit code 1.
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
      /mode must be one of "Offline", "Online"/,
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

  it("reports an unreachable server with exit code 1, one line, no password", () => {
    const res = pgmigrate(["show", "--server", SERVER, "--migration-name", "m1"]);
    assert.equal(res.code, 1, res.stderr);
    assert.equal(res.stderr.trim().split("\n").length, 1);
    assert.match(res.stderr, /ECONNREFUSED/);
    assert.ok(!res.stderr.includes("url-secret"));
  });
});
