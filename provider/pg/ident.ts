// Identifier and literal quoting for SQL we must build (names only; values are parameters).
import { escapeIdentifier, escapeLiteral } from "pg";

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return escapeIdentifier(name);
}

/** `"schema"."name"`. */
export function qualify(schema: string, name: string): string {
  return `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
}

/** A string literal, for the few statements that take no parameters (replication commands, DDL). */
export function quoteLiteral(value: string): string {
  return escapeLiteral(value);
}
