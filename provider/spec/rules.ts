// Rules about migrations that do not need a database: when two specs are the same migration
// (what a migration in a given state accepts is in ./states).
import { createHash } from "node:crypto";
import { publicSpec } from "../pg/redact";
import type { MigrationSpec } from "./types";

/**
 * Stable JSON: sorted keys, undefined members left out (undefined alone reads as null), so equal
 * values compare and hash equally whatever their key order.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Identity of a migration's spec: passwords and `cutover` do not count. */
export function specHash(spec: MigrationSpec): string {
  const { cutover: _cutover, ...rest } = publicSpec(spec);
  void _cutover;
  return createHash("sha256").update(canonicalJson(rest)).digest("hex");
}
