// `npm run bench`: every benchmark in sequence, each in its own Node process (so peak RSS is its
// own), with modest sizes for a shared laptop; `--full` uses each bench's own (larger) defaults.
// Usage: node dist/bench/run.js [--full]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

interface Bench {
  readonly script: string;
  readonly modest: readonly string[];
}

const BENCHES: readonly Bench[] = [
  { script: "clone.js", modest: ["--rows", "300000", "--repeat", "3"] },
  { script: "replication.js", modest: ["--changes", "100000"] },
  {
    script: "apply.js",
    modest: [
      "--pairs",
      "3",
      "--tpcb-transactions",
      "10000",
      "--inserts",
      "50000",
      "--updates",
      "50000",
      "--update-rows",
      "200000",
      "--lag-seconds",
      "20",
    ],
  },
  { script: "cutover.js", modest: ["--repeat", "3"] },
  { script: "scale-out.js", modest: ["--scale", "10", "--split-mb", "16", "--repeat", "3"] },
  // Positional row count; its own default is 1,000,000 rows in one transaction.
  { script: "cdc-large-transaction.js", modest: ["200000"] },
];

function main(): number {
  const { values } = parseArgs({ options: { full: { type: "boolean", default: false } } });
  const failed: string[] = [];
  for (const bench of BENCHES) {
    const file = path.join(__dirname, bench.script);
    if (!fs.existsSync(file)) {
      console.log(`\n== ${bench.script}: not built, skipped`);
      continue;
    }
    const args = values.full ? [] : [...bench.modest];
    console.log(`\n== ${bench.script} ${args.join(" ")}`);
    const result = spawnSync(process.execPath, [file, ...args], { stdio: "inherit" });
    if (result.status !== 0) failed.push(bench.script);
  }
  if (failed.length > 0) {
    console.error(`\nfailed: ${failed.join(", ")}`);
    return 1;
  }
  return 0;
}

process.exitCode = main();
