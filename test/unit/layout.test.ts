// The dependency rule (DESIGN.md, Layout): adapters → api → control and runtime supervision;
// runtime → phases → pg, spec; nothing upward, phases only through their entry.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { layoutViolations, relativeSpecifiers } from "../support/layout";

// dist/test/unit → the repository, where the .ts sources are.
const REPO = path.resolve(__dirname, "..", "..", "..");

describe("layout: the dependency rule", () => {
  it("finds every kind of relative import in a file", () => {
    const text = [
      'import { a } from "./a";',
      'import type { B } from "../spec/types";',
      'export { c } from "./c.js";',
      'export * from "../pg/errors";',
      'import x = require("./legacy");',
      'const lazy = () => import("../runtime/worker");',
      'const engine = require("./operations") as typeof import("./operations");',
      'import fs from "node:fs";',
      'const pkg = require("pg");',
    ].join("\n");
    assert.deepEqual(relativeSpecifiers("provider/cli/x.ts", text), [
      "./a",
      "../spec/types",
      "./c.js",
      "../pg/errors",
      "./legacy",
      "../runtime/worker",
      "./operations",
      "./operations",
    ]);
  });

  it("reports each violation in a known set of files, and nothing else", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "layout-"));
    try {
      const files: Record<string, string> = {
        "provider/pg/errors.ts": 'import type { S } from "../spec/types";\nexport const e = 1;',
        "provider/spec/types.ts": 'import { e } from "../pg/errors";\nexport type S = string;',
        "provider/clone/index.ts": 'export { copy } from "./copy";',
        "provider/clone/copy.ts": 'import { e } from "../pg/errors";\nexport const copy = e;',
        "provider/cdc/index.ts": 'import { copy } from "../clone/index";\nexport const c = copy;',
        "provider/control/db.ts": 'const api = require("../api");\nexport const db = api;',
        "provider/api/index.ts":
          'import { stop } from "../runtime/supervise";\nimport { w } from "../runtime/worker";',
        "provider/runtime/supervise.ts":
          'import { copy } from "../clone/copy";\nimport { c } from "../cdc";',
        "provider/runtime/worker.ts":
          'import path from "node:path";\nexport const cli = path.join(__dirname, "..", "cli", "main.js");\nexport const api = "../api/index.js";',
        "provider/cli/main.ts":
          'import { w } from "../api/index";\nconst lazy = () => import("../runtime/worker");',
        "provider/pulumi/index.ts": 'import type { S } from "../spec/types";',
        "provider/console/server.ts":
          'import { getMigration } from "../api/index";\nimport { db } from "../control/db";',
        "sdk/index.ts":
          'import { p } from "../provider/pulumi/index";\nimport { s } from "../provider/pulumi/state";',
      };
      for (const [file, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        fs.writeFileSync(path.join(root, file), text);
      }
      assert.deepEqual(layoutViolations(root), [
        "provider/api/index.ts → provider/runtime/worker.ts (api may import only control, spec, pg, runtime/supervise)",
        "provider/cdc/index.ts → provider/clone/index.ts (phase cdc may import only spec, pg)",
        "provider/cli/main.ts → provider/runtime/worker.ts (adapter cli may import only api, spec, pg, console)",
        "provider/console/server.ts → provider/control/db.ts (adapter console may import only api, spec, pg)",
        "provider/control/db.ts → provider/api/index.ts (control may import only spec, pg)",
        "provider/runtime/supervise.ts → provider/clone/copy.ts (a phase is used through its entry provider/clone/index.ts)",
        'provider/runtime/worker.ts → provider/cli (path string "../cli" locates another folder\'s file)',
        'provider/runtime/worker.ts → provider/api (path string "../api/index.js" locates another folder\'s file)',
        "sdk/index.ts → provider/pulumi/state.ts (sdk uses only the provider/pulumi entry and spec)",
      ]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("holds for provider/ and sdk/", () => {
    const violations = layoutViolations(REPO);
    assert.deepEqual(violations, [], `\n${violations.join("\n")}\n`);
  });
});
