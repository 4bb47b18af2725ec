// npm's `prepare` (npm install from git, npm ci, npm pack): builds what the package ships
// (tsconfig.pack.json: provider/ and sdk/, then the control store's SQL) so an install from git
// gets a working package. Without TypeScript (devDependencies omitted) an existing build is
// kept; with neither, the install fails saying why instead of leaving a package without code.
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
let tsc;
try {
  tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
} catch {
  tsc = undefined;
}
if (!tsc) {
  if (fs.existsSync(path.join(root, "dist", "sdk", "index.js"))) {
    console.log("prepare: typescript not installed; keeping the existing dist/");
    process.exit(0);
  }
  console.error(
    "prepare: pulumi-postgres-migration must be built, and typescript (a devDependency) is not " +
      "installed: run `npm install` with devDependencies, or install from a tarball (npm pack).",
  );
  process.exit(1);
}
execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.pack.json")], {
  cwd: root,
  stdio: "inherit",
});
require("./copy-sql.js");
