// `pgmigrate serve` without servers: --listen parsing, the loopback rule, the TLS-or-insecure
// refusal, and sessions that end.
import assert from "node:assert/strict";
import { serveCommand, parseListen } from "../../provider/cli/serve";
import type { CliContext } from "../../provider/cli/context";
import { isLoopback } from "../../provider/console/server";
import { sameSecret, SESSION_LIFETIME_MS, Sessions } from "../../provider/console/sessions";

describe("console: pgmigrate serve options", () => {
  it("parses HOST:PORT, IPv6 in brackets, and rejects the rest", () => {
    assert.deepEqual(parseListen("127.0.0.1:7432"), { host: "127.0.0.1", port: 7432 });
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseListen("0.0.0.0:8080"), { host: "0.0.0.0", port: 8080 });
    for (const bad of ["7432", "127.0.0.1", "host:99999", "host:port", ":80"])
      assert.throws(() => parseListen(bad), /--listen must be HOST:PORT/, bad);
  });

  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
      assert.ok(isLoopback(h), h);
    for (const h of ["0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1"])
      assert.ok(!isLoopback(h), h);
  });

  it("refuses a non-loopback address without TLS or --insecure, before listening", async () => {
    const ctx = { secrets: [], label: "t:5432" } as unknown as CliContext;
    await assert.rejects(
      serveCommand(ctx, { listen: "0.0.0.0:0" }),
      /not loopback\) needs --tls-cert and --tls-key, or --insecure/,
    );
    await assert.rejects(
      serveCommand(ctx, { listen: "127.0.0.1:0", tlsCert: "cert.pem" }),
      /--tls-cert and --tls-key go together/,
    );
  });

  it("ends a session after its lifetime (12 h by default), with its CSRF token", () => {
    let now = 1_000_000;
    const sessions = new Sessions(SESSION_LIFETIME_MS, () => now);
    assert.equal(sessions.lifetimeSeconds, 12 * 3600);
    const first = sessions.open();
    const second = sessions.open();
    const csrf = sessions.csrfOf(first);
    assert.ok(csrf && csrf.length >= 43, "a random CSRF token per session");
    assert.notEqual(sessions.csrfOf(second), csrf);
    assert.equal(sessions.csrfOf("forged"), undefined);
    assert.equal(sessions.csrfOf(undefined), undefined);
    now += SESSION_LIFETIME_MS - 1;
    assert.equal(sessions.csrfOf(first), csrf, "still live a moment before the end");
    now += 1;
    assert.equal(sessions.csrfOf(first), undefined, "ended");
    assert.equal(sessions.csrfOf(second), undefined, "ended");
    const third = sessions.open();
    assert.ok(sessions.csrfOf(third), "a new link opens a new session");
  });

  it("compares secrets whole, and never with an empty one", () => {
    assert.ok(sameSecret("abc", "abc"));
    for (const given of ["ab", "abcd", "abd", "", undefined]) assert.ok(!sameSecret(given, "abc"));
    assert.ok(!sameSecret("", ""), "an ended session's empty token matches nothing");
  });
});
