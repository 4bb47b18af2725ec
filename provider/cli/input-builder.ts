// Collects resolveSpec() inputs from a properties file, remembering which key set what, so
// two keys that disagree are named in one message.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: Json };
export const isObject = (v: Json | undefined): v is Obj =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export const lower = (s: string): string => s.toLowerCase();

/** Case-insensitive enum value → its canonical spelling (sslMode: VerifyFull = verify-full). */
export function normalizeEnum(value: Json, allowed: readonly string[]): Json {
  if (typeof value !== "string") return value;
  const squash = (s: string): string => s.toLowerCase().replace(/[-_ ]/g, "");
  return allowed.find((a) => squash(a) === squash(value)) ?? value;
}

/** Collects inputs, remembering which key set what, and reports keys that disagree. */
export class InputBuilder {
  readonly input: Record<string, unknown> = {};
  readonly origins = new Map<string, string>();
  readonly problems: string[] = [];
  readonly notes: string[] = [];

  set(path: string, value: unknown, origin: string, override = false): void {
    const parts = path.split(".");
    let node = this.input;
    for (const part of parts.slice(0, -1)) {
      if (!isObject(node[part] as Json)) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    const leaf = parts[parts.length - 1];
    const before = this.origins.get(path);
    if (!override && before !== undefined && JSON.stringify(node[leaf]) !== JSON.stringify(value)) {
      this.problems.push(`${before} and ${origin} disagree; keep one of them`);
      return;
    }
    node[leaf] = value;
    this.origins.set(path, origin);
  }

  bool(path: string, value: Json, origin: string): void {
    const parsed = parseBoolean(value);
    if (parsed === undefined) this.problems.push(`${origin} must be true or false`);
    else this.set(path, parsed, origin);
  }
}

/** `true`, `"true"`, `"True"` → true; likewise false; anything else → undefined. */
export function parseBoolean(value: Json | undefined): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (typeof value === "string" && /^(true|false)$/i.test(value.trim())) {
    return value.trim().toLowerCase() === "true";
  }
  return undefined;
}
