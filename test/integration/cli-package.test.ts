// The package as a user gets it: `npm pack` ships the build, the control store's SQL and the
// `pgmigrate` bin and nothing else (no tests, no secrets); the tarball installs globally and
// `pgmigrate` runs from the prefix's bin; an install from git builds through the prepare script.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const REPO = path.resolve(__dirname, "../../..");
const VERSION: string = JSON.parse(
  fs.readFileSync(path.join(REPO, "package.json"), "utf8"),
).version;

interface PackResult {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

describe("the package: npm pack, npm install -g, install from git", function () {
  this.timeout(180_000);
  let dir: string;
  let tarball: string;
  let files: string[];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-package-"));
    // dist is built (these tests run from it): packing must not rebuild it.
    const out = execFileSync(
      "npm",
      ["pack", "--json", "--ignore-scripts", "--pack-destination", dir],
      { cwd: REPO, encoding: "utf8" },
    );
    const [packed] = JSON.parse(out) as PackResult[];
    tarball = path.join(dir, packed.filename);
    files = packed.files.map((f) => f.path).sort();
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("npm pack ships the SDK, the provider, the control SQL and the bin, and nothing else", () => {
    assert.ok(fs.statSync(tarball).size > 0);
    for (const needed of [
      "package.json",
      "README.md",
      "dist/sdk/index.js",
      "dist/sdk/index.d.ts",
      "dist/provider/pulumi/index.js",
      "dist/provider/api/index.js",
      "dist/provider/cli/main.js",
      "dist/provider/control/sql/001_init.sql",
      "provider/control/sql/001_init.sql",
    ]) {
      assert.ok(files.includes(needed), `${needed} is packed`);
    }
    const sql = fs.readdirSync(path.join(REPO, "provider/control/sql"));
    for (const file of sql) assert.ok(files.includes(`dist/provider/control/sql/${file}`), file);
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    assert.equal(manifest.bin.pgmigrate, "dist/provider/cli/main.js");
    const stray = files.filter(
      (f) =>
        !/^(package\.json|README\.md|LICENSE)$/.test(f) &&
        !/^dist\/(sdk|provider)\//.test(f) &&
        !/^provider\/control\/sql\/[^/]+\.sql$/.test(f),
    );
    assert.deepEqual(stray, [], "only the build, the SQL and the manifest");
    const unwanted = files.filter(
      (f) =>
        /(^|\/)(test|tests|examples|bench|node_modules)\//.test(f) ||
        /(^|\/)\.(env|npmrc|pgpass)|\.(pem|key|log)$|(^|\/)Pulumi\.[^/]*\.yaml$/.test(f),
    );
    assert.deepEqual(unwanted, [], "no tests, examples or secrets");
  });

  it("npm install -g of the tarball puts pgmigrate on PATH", () => {
    const prefix = path.join(dir, "prefix");
    execFileSync(
      "npm",
      [
        "install",
        "--global",
        "--prefix",
        prefix,
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        tarball,
      ],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
    );
    const bin = path.join(prefix, "bin", "pgmigrate");
    const version = spawnSync(bin, ["--version"], { encoding: "utf8" });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), VERSION);
    const help = spawnSync(bin, ["--help"], { encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);
    for (const command of ["create", "show", "update", "list", "delete"]) {
      assert.match(help.stdout, new RegExp(`^\\s+${command}\\b`, "m"), command);
    }
  });

  it("the prepare script builds what the package ships, and says why when it cannot", () => {
    // A clone: the sources and build files, no dist.
    const clone = path.join(dir, "clone");
    fs.mkdirSync(clone);
    for (const entry of [
      "provider",
      "sdk",
      "scripts",
      "package.json",
      "tsconfig.json",
      "tsconfig.pack.json",
    ]) {
      fs.cpSync(path.join(REPO, entry), path.join(clone, entry), { recursive: true });
    }
    const prepare = (): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ["scripts/prepare.js"], { cwd: clone, encoding: "utf8" });

    // devDependencies absent and nothing built: a clear failure, not a package without code.
    const missing = prepare();
    assert.equal(missing.status, 1);
    assert.match(String(missing.stderr), /typescript \(a devDependency\) is not installed/);

    // With devDependencies (as npm installs them for a git dependency's prepare).
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(clone, "node_modules"));
    const built = prepare();
    assert.equal(built.status, 0, String(built.stderr) + String(built.stdout));
    for (const file of [
      "dist/sdk/index.js",
      "dist/sdk/index.d.ts",
      "dist/provider/cli/main.js",
      "dist/provider/control/sql/001_init.sql",
    ]) {
      assert.ok(fs.existsSync(path.join(clone, file)), `${file} built`);
    }
    assert.ok(!fs.existsSync(path.join(clone, "dist/test")), "tests are not built");
    const version = spawnSync(process.execPath, ["dist/provider/cli/main.js", "--version"], {
      cwd: clone,
      encoding: "utf8",
    });
    assert.equal(version.stdout.trim(), VERSION);

    // devDependencies omitted later (npm ci --omit=dev): the existing build is kept.
    fs.unlinkSync(path.join(clone, "node_modules"));
    const kept = prepare();
    assert.equal(kept.status, 0, String(kept.stderr));
    assert.ok(fs.existsSync(path.join(clone, "dist/sdk/index.js")));
  });
});
