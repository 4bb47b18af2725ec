// Copies the control store's versioned DDL next to the compiled code that applies it, and the
// web console's static assets (HTML, JS, CSS) next to the console's server.
const fs = require("fs");
const path = require("path");
const from = path.join(__dirname, "..", "provider", "control", "sql");
const to = path.join(__dirname, "..", "dist", "provider", "control", "sql");
fs.mkdirSync(to, { recursive: true });
for (const file of fs.readdirSync(from)) {
  if (file.endsWith(".sql")) fs.copyFileSync(path.join(from, file), path.join(to, file));
}
const assetsFrom = path.join(__dirname, "..", "provider", "console", "assets");
const assetsTo = path.join(__dirname, "..", "dist", "provider", "console", "assets");
fs.mkdirSync(assetsTo, { recursive: true });
for (const file of fs.readdirSync(assetsFrom)) {
  fs.copyFileSync(path.join(assetsFrom, file), path.join(assetsTo, file));
}
