// The dependency rule of provider/ and sdk/ as code: reads each source file's relative imports
// with the TypeScript parser and reports every edge the rule forbids, as `file → target (rule)`.
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";

const ADAPTERS = ["pulumi", "cli", "console"];
const PHASES = ["validate", "clone", "cdc", "verify"];

/** Folders of provider/ each folder may import (besides itself). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  pulumi: ["api", "spec", "pg"],
  cli: ["api", "spec", "pg", "console"],
  console: ["api", "spec", "pg"],
  api: ["control", "spec", "pg"],
  runtime: [...PHASES, "control", "spec", "pg"],
  validate: ["spec", "pg"],
  clone: ["spec", "pg"],
  cdc: ["spec", "pg"],
  verify: ["spec", "pg"],
  control: ["spec", "pg"],
  pg: ["spec"],
  spec: ["pg"],
};
/** The one runtime module the facade may use: supervision (spawn/stop a worker). */
const API_RUNTIME_ENTRY = "provider/runtime/supervise.ts";
const SDK_TARGETS = ["provider/pulumi/index.ts"];

/** Where a repository-relative path lives: `sdk`, a provider folder, or undefined (elsewhere). */
function areaOf(file: string): string | undefined {
  const parts = file.split("/");
  if (parts[0] === "sdk") return "sdk";
  // A file directly under provider/ belongs to no folder: reported as unknown.
  if (parts[0] === "provider") return parts.length > 2 ? parts[1] : "(top level)";
  return undefined;
}

/** The rule an import from `from` to `to` (repository-relative .ts paths) breaks, if any. */
export function ruleBroken(from: string, to: string): string | undefined {
  const source = areaOf(from);
  const target = areaOf(to);
  if (source === "sdk") {
    if (target === "sdk" || SDK_TARGETS.includes(to) || target === "spec") return undefined;
    return "sdk uses only the provider/pulumi entry and spec";
  }
  if (source === undefined) return undefined;
  if (!(source in ALLOWED)) return `provider/${source} is not a known folder`;
  if (target === source) return undefined;
  if (target === undefined || target === "sdk") return "provider imports nothing outside it";
  if (!(target in ALLOWED)) return `provider/${target} is not a known folder`;
  const allowed =
    ALLOWED[source].includes(target) || (source === "api" && to === API_RUNTIME_ENTRY);
  if (!allowed) {
    const kind = PHASES.includes(source)
      ? `phase ${source}`
      : ADAPTERS.includes(source)
        ? `adapter ${source}`
        : source;
    return `${kind} may import only ${ALLOWED[source].join(", ")}${
      source === "api" ? ", runtime/supervise" : ""
    }`;
  }
  if (PHASES.includes(target) && to !== `provider/${target}/index.ts`)
    return `a phase is used through its entry provider/${target}/index.ts`;
  return undefined;
}

/** Relative module specifiers in `text`: imports, exports, import types, require() and import(). */
export function relativeSpecifiers(fileName: string, text: string): string[] {
  const sourceFile = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const add = (node: ts.Node | undefined): void => {
    if (node && ts.isStringLiteralLike(node) && node.text.startsWith(".")) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference)
    )
      add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument))
      add(node.argument.literal);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isRequire = ts.isIdentifier(callee) && callee.text === "require";
      if (isRequire || callee.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

/**
 * Path strings that find another provider folder's (compiled) file at run time, e.g.
 * `path.join(__dirname, "..", "cli", "main.js")` or `"../cli/main.js"` outside an import.
 */
export function folderPathStrings(fileName: string, text: string, ownFolder: string): string[] {
  const sourceFile = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const folders = Object.keys(ALLOWED).filter((f) => f !== ownFolder);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.arguments.length > 1) {
      const [first, ...rest] = node.arguments;
      if (ts.isIdentifier(first) && first.text === "__dirname") {
        const names = rest.map((a) => (ts.isStringLiteralLike(a) ? a.text : undefined));
        const after = names.findIndex((n) => n !== "..");
        if (after > 0 && names[after] !== undefined && folders.includes(names[after] as string))
          found.push(names.slice(0, after + 1).join("/"));
      }
    }
    if (ts.isStringLiteralLike(node) && !isModuleSpecifier(node)) {
      const match = /^(?:\.\.\/)+([\w-]+)\//.exec(node.text);
      if (match && folders.includes(match[1])) found.push(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

function isModuleSpecifier(node: ts.StringLiteralLike): boolean {
  const parent = node.parent;
  if (ts.isImportDeclaration(parent) || ts.isExportDeclaration(parent)) return true;
  if (ts.isExternalModuleReference(parent) || ts.isLiteralTypeNode(parent)) return true;
  if (ts.isCallExpression(parent) && parent.arguments[0] === node) {
    const callee = parent.expression;
    return (
      (ts.isIdentifier(callee) && callee.text === "require") ||
      callee.kind === ts.SyntaxKind.ImportKeyword
    );
  }
  return false;
}

/** The .ts file a relative specifier names (`./x`, `./x.js`, `./dir` → `./dir/index.ts`). */
function resolve(root: string, fromFile: string, specifier: string): string {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), specifier));
  const stem = base.replace(/\.(js|ts)$/, "");
  const candidates = [`${stem}.ts`, `${stem}/index.ts`, base];
  return candidates.find((c) => fs.existsSync(path.join(root, c))) ?? `${stem}.ts`;
}

function sourceFiles(root: string, folder: string): string[] {
  const dir = path.join(root, folder);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => path.posix.join(folder, f.split(path.sep).join("/")))
    .sort();
}

/** Every violation of the rule under `root` (a repository), one line each. */
export function layoutViolations(root: string): string[] {
  const violations: string[] = [];
  for (const file of [...sourceFiles(root, "provider"), ...sourceFiles(root, "sdk")]) {
    const text = fs.readFileSync(path.join(root, file), "utf8");
    for (const specifier of relativeSpecifiers(file, text)) {
      const to = resolve(root, file, specifier);
      const rule = ruleBroken(file, to);
      if (rule) violations.push(`${file} → ${to} (${rule})`);
    }
    const folder = areaOf(file);
    if (folder && folder !== "sdk") {
      for (const located of folderPathStrings(file, text, folder))
        violations.push(
          `${file} → provider/${located.replace(/^(\.\.\/)+/, "").split("/")[0]} ` +
            `(path string "${located}" locates another folder's file)`,
        );
    }
  }
  return violations;
}
