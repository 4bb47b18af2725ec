// The console's sessions: one per opened link, each with its CSRF token, ending after a fixed
// lifetime (the cookie says the same), so a forgotten browser tab does not keep the keys forever.
import { randomBytes, timingSafeEqual } from "node:crypto";

/** How long a session lasts after the link was opened. */
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;

/** Constant-time comparison of a presented secret with the expected one (never equal to ""). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  // An unknown or ended session expects "": nothing presented may match it.
  if (typeof given !== "string" || expected.length === 0) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class Sessions {
  /** Session id (the cookie's value) → its CSRF token and when it ends (ms). */
  private readonly live = new Map<string, { readonly csrf: string; readonly endsAt: number }>();

  constructor(
    private readonly lifetimeMs: number = SESSION_LIFETIME_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session: its id for the cookie. */
  open(): string {
    this.prune();
    const id = randomBytes(32).toString("base64url");
    this.live.set(id, {
      csrf: randomBytes(32).toString("base64url"),
      endsAt: this.now() + this.lifetimeMs,
    });
    return id;
  }

  /** The CSRF token of a live session; undefined for an unknown or ended one. */
  csrfOf(id: string | undefined): string | undefined {
    if (id === undefined) return undefined;
    const session = this.live.get(id);
    if (!session) return undefined;
    if (session.endsAt <= this.now()) {
      this.live.delete(id);
      return undefined;
    }
    return session.csrf;
  }

  /** Seconds a session opened now lasts (the cookie's Max-Age). */
  get lifetimeSeconds(): number {
    return Math.floor(this.lifetimeMs / 1000);
  }

  private prune(): void {
    const now = this.now();
    for (const [id, session] of this.live) if (session.endsAt <= now) this.live.delete(id);
  }
}
