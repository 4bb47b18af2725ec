// Copies the control store's versioned DDL next to the compiled code that applies it.
const fs = require("fs");
const path = require("path");
const from = path.join(__dirname, "..", "provider", "control", "sql");
const to = path.join(__dirname, "..", "dist", "provider", "control", "sql");
fs.mkdirSync(to, { recursive: true });
for (const file of fs.readdirSync(from)) {
  if (file.endsWith(".sql")) fs.copyFileSync(path.join(from, file), path.join(to, file));
}
