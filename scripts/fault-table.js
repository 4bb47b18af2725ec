#!/usr/bin/env node
// Renders the fault matrix's outcomes (the JSON `npm run test:faults` writes to
// PGMIGRATE_FAULT_REPORT) as the Markdown tables of docs/reliability.md:
//   PGMIGRATE_FAULT_REPORT=/tmp/faults.json npm run test:faults; node scripts/fault-table.js /tmp/faults.json
"use strict";
const fs = require("node:fs");

const file = process.argv[2];
if (!file) {
  console.error("usage: node scripts/fault-table.js OUTCOMES.json");
  process.exit(2);
}
const { seed, date, outcomes } = JSON.parse(fs.readFileSync(file, "utf8"));
const cell = (text) => String(text).replace(/\|/g, "\\|").replace(/\n/g, " ");

const groups = new Map();
for (const o of outcomes) {
  const key = `${o.fault}\0${o.phase}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(o);
}

const lines = [
  `Seed ${seed}, run ${date.slice(0, 16).replace("T", " ")} UTC.`,
  "",
  "| fault | phase | runs | outcome | data check |",
  "|---|---|---|---|---|",
];
for (const runs of groups.values()) {
  const states = [...new Set(runs.map((o) => o.state))]
    .map((s) => `${s} ×${runs.filter((o) => o.state === s).length}`)
    .join(", ");
  const failed = runs.some((o) => o.dataCheck.startsWith("FAILED"));
  const checks = [...new Set(runs.map((o) => o.dataCheck.replace(/; \d+ history rows$/, "")))];
  lines.push(
    `| ${cell(runs[0].fault)} | ${cell(runs[0].phase)} | ${runs.length} | ${cell(states)}${failed ? " **✗**" : ""} | ${cell(checks.join("; "))} |`,
  );
}
lines.push("", "| # | fault | phase | moment (seeded) | ended | error | s |", "|---|---|---|---|---|---|---|");
outcomes.forEach((o, i) => {
  lines.push(
    `| ${i + 1} | ${cell(o.fault)} | ${cell(o.phase)} | ${cell(o.moment)} | ${cell(o.state)} | ${cell(o.error ?? "")} | ${o.seconds} |`,
  );
});
console.log(lines.join("\n"));
