// `pgmigrate serve` without servers: --listen parsing, the loopback rule, the TLS-or-insecure
// refusal, and the bounded latency history.
import assert from "node:assert/strict";
import { serveCommand, parseListen } from "../../provider/cli/serve";
import type { CliContext } from "../../provider/cli/context";
import { isLoopback, LatencyHistory, LATENCY_SAMPLES } from "../../provider/console/server";

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

  it("keeps a bounded latency history per migration, newest last, skipping nulls", () => {
    const history = new LatencyHistory();
    history.record("a", null);
    assert.deepEqual(history.of("a"), []);
    for (let i = 0; i < LATENCY_SAMPLES + 25; i++) history.record("a", i);
    const samples = history.of("a");
    assert.equal(samples.length, LATENCY_SAMPLES);
    assert.equal(samples[0][1], 25);
    assert.equal(samples[samples.length - 1][1], LATENCY_SAMPLES + 24);
    assert.deepEqual(history.of("b"), []);
  });
});
