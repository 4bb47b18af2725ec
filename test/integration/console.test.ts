// The web console (`pgmigrate serve`) in a real browser (Debian's chromium through
// playwright-core) over real servers: the grid, a migration's details, Cutover and Cancel with
// their confirmations, the token and CSRF gates, and no password in anything served or logged.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { getMigration, listMigrations } from "../../provider/api/index";
import type { MigrationSpec } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { loadFixture, writeWorkload } from "../support/fixture";
import { controlOf, count, onlineSpec, useScenario } from "../support/online";
import { serve, type Served } from "../support/serve";
import { until } from "../support/wait";

const CHROMIUM = "/usr/bin/chromium";

describe("console: pgmigrate serve in a real browser", function () {
  this.timeout(180_000);
  const s = useScenario();
  let served: Served | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let shots: string;
  const bodies: string[] = [];
  let cutSpec: MigrationSpec;
  let cancelSpec: MigrationSpec;

  before(async function () {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
    // The tests' output folder (git-ignored); this file's screenshots are replaced on every run
    // (console-create.test.ts writes its own, create-*.png, there too): nothing piles up in /tmp.
    shots = path.resolve(__dirname, "../../../test-output/console");
    fs.mkdirSync(shots, { recursive: true });
    for (const file of fs.readdirSync(shots)) {
      if (!file.startsWith("create-")) fs.rmSync(path.join(shots, file), { force: true });
    }
    await Promise.all([
      loadFixture(s.source, "shop", { rows: 300 }),
      loadFixture(s.source, "crm", { rows: 100 }),
    ]);
    cutSpec = onlineSpec(s.source, s.target, "console-cut", ["shop"]);
    cancelSpec = onlineSpec(s.source, s.target, "console-cancel", ["crm"]);
    await Promise.all([
      s.startSpawnedStreaming(cutSpec, "console-cut-"),
      s.startSpawnedStreaming(cancelSpec, "console-cancel-"),
    ]);
    const url = `postgresql://${s.target.user}@${s.target.host}:${s.target.port}/${cutSpec.controlDatabase}`;
    served = await serve(url, s.target.password);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.on("response", (response) => {
      void response
        .text()
        .then((text) => bodies.push(text))
        .catch(() => undefined);
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await served?.stop();
    if (shots) console.log(`      screenshots in ${shots}`);
  });

  it("answers 401 and nothing else without the token, with a wrong one, or a wrong bearer", async () => {
    const origin = served!.origin;
    for (const [url, headers] of [
      [`${origin}/`, {}],
      [`${origin}/api/migrations`, {}],
      [`${origin}/assets/app.js`, {}],
      [`${origin}/?token=wrong`, {}],
      [`${origin}/api/migrations`, { authorization: "Bearer wrong" }],
      [`${origin}/api/migrations`, { cookie: "pgmigrate_session=forged" }],
    ] as const) {
      const res = await fetch(url, { headers, redirect: "manual" });
      assert.equal(res.status, 401, url);
      assert.equal(await res.text(), "", url);
    }
    const good = new URL(served!.link).searchParams.get("token");
    const bearer = await fetch(`${origin}/api/migrations?filter=All`, {
      headers: { authorization: `Bearer ${good}` },
    });
    assert.equal(bearer.status, 200);
    assert.equal(((await bearer.json()) as { migrations: unknown[] }).migrations.length, 2);
  });

  it("shows both migrations in the grid with the reference columns, newest first", async () => {
    await page.goto(served!.link);
    assert.equal(new URL(page.url()).search, "", "the token is dropped from the address");
    const row = page.locator('tr[data-name="console-cut"]');
    await row.waitFor();
    await page.locator('tr[data-name="console-cancel"]').waitFor();
    const cells = await row.locator("td").allInnerTexts();
    assert.equal(cells[0], "console-cut");
    assert.match(cells[1], /WaitingForUserAction\s+WaitingForCutoverTrigger/);
    assert.equal(cells[2], "Online");
    assert.equal(cells[3], "ValidateAndMigrate");
    assert.equal(cells[4], `${s.source.host}:${s.source.port}`);
    assert.equal(cells[5], "OnPremises");
    assert.equal(cells[6], "shop");
    assert.match(cells[7], /\d+(\.\d)? s|min/);
    assert.notEqual(cells[8], "—");
    assert.match(cells[9], /^\d+(\.\d)? s$/, "latency in seconds for an online migration");
    const names = await page
      .locator("#grid-body tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-name")));
    const listed = await listMigrations(controlOf(cutSpec), "Active");
    assert.deepEqual(
      names,
      listed.map((m) => m.name),
      "the grid keeps the facade's order (newest first)",
    );
    assert.deepEqual([...names].sort(), ["console-cancel", "console-cut"]);
    await page.screenshot({ path: path.join(shots, "grid.png") });
    // A narrow window: the page does not overflow sideways (the grid scrolls in its own box).
    await page.setViewportSize({ width: 420, height: 800 });
    const overflow = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    assert.equal(overflow, 0);
    await page.screenshot({ path: path.join(shots, "grid-narrow.png") });
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it("shows validation, table progress and latency; Cutover confirms with the latency → Succeeded, identical data", async () => {
    await page.locator('a[href="/migrations/console-cut"]').click();
    await page.locator('#databases tr[data-database="shop"]').waitFor();
    const expectedTables = await count(
      s.source,
      "shop",
      "SELECT count(*) AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')",
    );
    const completed = await page
      .locator('#databases tr[data-database="shop"] td.completed')
      .innerText();
    assert.ok(Number(completed.replace(/\D/g, "")) > 0, `completed tables: ${completed}`);
    assert.ok(Number(completed.replace(/\D/g, "")) <= expectedTables);
    assert.match(await page.locator("#validation").innerText(), /Server level[\s\S]*Succeeded/);
    assert.match(await page.locator("#validation").innerText(), /Database shop/);
    // The runtime serving it: its worker, coordinating (host, pid, heartbeat).
    const serving = await until(
      async () => {
        const text = await page.locator("#runtimes-table tbody").innerText();
        return /\d+\s+coordinator/.test(text) ? text : undefined;
      },
      { what: "the worker listed among the runtimes" },
    );
    assert.equal(serving.trim().split("\n").length, 1, serving);
    await until(async () => (await page.locator("#latency-chart canvas").count()) > 0, {
      what: "the latency chart",
    });
    // The source writes while the page watches: the counters move and latency samples build up.
    const workload = writeWorkload(s.source, "shop", { transactions: 150, pauseMs: 20 });
    const applied = page.locator('#databases tr[data-database="shop"] td.applied');
    await until(async () => Number((await applied.innerText()).replace(/\D/g, "")) > 0, {
      what: "applied changes to show in the console",
    });
    const samples = await until(
      async () => {
        const body = await page.evaluate(async () =>
          (await fetch("/api/migrations/console-cut")).json(),
        );
        const history = (body as { latencyHistory: [number, number][] }).latencyHistory;
        return history.length >= 3 ? history : undefined;
      },
      { what: "three latency samples" },
    );
    assert.ok(samples.every(([t, v]) => t > 0 && v >= 0));
    const counts = await workload;
    assert.equal(counts.transactions, 150);
    await page.screenshot({ path: path.join(shots, "details.png"), fullPage: true });

    const cutover = page.locator("#cutover");
    assert.equal(await cutover.isEnabled(), true);
    assert.equal(await page.locator("#cancel").isEnabled(), true);
    await cutover.focus();
    await page.keyboard.press("Enter");
    const dialog = page.locator("dialog#confirm");
    await dialog.waitFor();
    assert.match(await page.locator("#confirm-latency").innerText(), /^\d+(\.\d)? s$/);
    assert.match(await page.locator("#confirm-pending").innerText(), /^\d[\d,]*$/);
    assert.match(await dialog.innerText(), /Stop writes to the source/);
    await page.screenshot({ path: path.join(shots, "cutover-dialog.png") });
    await page.locator("#confirm-yes").click();
    await until(async () => (await page.locator("#state").innerText()) === "Succeeded", {
      what: "the console to show console-cut Succeeded",
      timeoutMs: 90_000,
    });
    const outputs = await getMigration(controlOf(cutSpec), "console-cut");
    assert.equal(outputs?.state, "Succeeded");
    assert.notEqual(outputs?.cutoverLsn, null);
    assert.equal(await page.locator("#cutover").isEnabled(), false);
    const same = await compareDatabases(s.source, "shop", s.target, "shop");
    assert.deepEqual(same.differences, []);
  });

  it("refuses a POST without the CSRF token or with a wrong one (403) and changes nothing", async () => {
    const statuses = await page.evaluate(async () => {
      const codes: number[] = [];
      const variants: Record<string, string>[] = [{}, { "x-csrf-token": "wrong" }];
      for (const headers of variants) {
        const res = await fetch("/api/migrations/console-cancel/actions", {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ action: "cancel" }),
        });
        codes.push(res.status);
      }
      return codes;
    });
    assert.deepEqual(statuses, [403, 403]);
    const outputs = await getMigration(controlOf(cancelSpec), "console-cancel");
    assert.equal(outputs?.state, "WaitingForUserAction");
  });

  it("Cancel names the target database it drops → Canceled, database dropped, no slot", async () => {
    await page.goto(`${served!.origin}/migrations/console-cancel`);
    const cancel = page.locator("#cancel");
    await until(() => cancel.isEnabled(), { what: "the Cancel button to be enabled" });
    await cancel.click();
    assert.deepEqual(await page.locator("#confirm-drops li").allInnerTexts(), ["crm"]);
    await page.locator("#confirm-yes").click();
    await until(async () => (await page.locator("#state").innerText()) === "Canceled", {
      what: "the console to show console-cancel Canceled",
      timeoutMs: 90_000,
    });
    assert.equal(
      await count(
        s.target,
        "postgres",
        "SELECT count(*) AS n FROM pg_database WHERE datname = 'crm'",
      ),
      0,
    );
    assert.equal(
      await count(
        s.source,
        "postgres",
        "SELECT count(*) AS n FROM pg_replication_slots WHERE database = 'crm'",
      ),
      0,
    );
    await page.goto(`${served!.origin}/?filter=All`);
    await page.locator('tr[data-name="console-cancel"] td.state-Canceled').waitFor();
  });

  it("never serves or logs a password or (after the start line) the token", async () => {
    assert.ok(bodies.length > 10, `bodies seen: ${bodies.length}`);
    const token = new URL(served!.link).searchParams.get("token") as string;
    for (const secret of [s.source.password, s.target.password]) {
      assert.ok(!bodies.some((b) => b.includes(secret)), "a password in a response body");
      assert.ok(!served!.output().includes(secret), "a password in the server's output");
    }
    assert.equal(served!.output().split(token).length - 1, 1, "the token is printed once");
    assert.ok(!bodies.some((b) => b.includes(token)), "the token in a response body");
  });
});
