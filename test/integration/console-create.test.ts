// The console's Create page in a real browser (Debian's chromium through playwright-core) over
// real servers: Test connection (a wrong password, then the right ones), the source's databases
// to pick from, readable input errors, Start → WaitingForUserAction; the latency history and the
// time in each state read from the control store (still there after serve restarts); Cancel →
// Canceled with nothing left; an Offline Validate run; and the passwords typed in the form found
// nowhere.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { getMigration, type ControlLocation } from "../../provider/api/index";
import { withControl } from "../../provider/control/db";
import { recordLatencySample } from "../../provider/control/latency";
import { loadFixture, writeWorkload } from "../support/fixture";
import { count, leaseHolderPid, useScenario } from "../support/online";
import { serve, type Served } from "../support/serve";
import { until } from "../support/wait";
import { killWorkers, processGone } from "../support/workers";

const CHROMIUM = "/usr/bin/chromium";
const NAME = "console-made";

interface Details {
  outputs: { state: string; substate: string; workerLog: string | null };
  latencyHistory: [number, number][];
  states: { state: string; substate: string; enteredAt: string; seconds: number }[];
}

describe("console: Create from the browser, latency history and states from the control store", function () {
  this.timeout(180_000);
  const s = useScenario();
  const served: Served[] = [];
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let shots: string;
  let at: ControlLocation;
  /** Every response body and request URL the browser saw, for the secrets check. */
  const bodies: string[] = [];
  const urls: string[] = [];
  const wrongPassword = `wrong-${randomBytes(9).toString("hex")}`;
  let workerPid: number | undefined;

  const newPage = async (link: string): Promise<Page> => {
    const opened = await context.newPage();
    opened.on("request", (request) => urls.push(request.url()));
    opened.on("response", (response) => {
      void response
        .text()
        .then((text) => bodies.push(text))
        .catch(() => undefined);
    });
    await opened.goto(link);
    return opened;
  };
  const details = (): Promise<Details> =>
    page.evaluate(
      async (name) => (await fetch(`/api/migrations/${name}`)).json(),
      NAME,
    ) as Promise<Details>;

  before(async function () {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
    shots = path.resolve(__dirname, "../../../test-output/console");
    fs.mkdirSync(shots, { recursive: true });
    for (const file of fs.readdirSync(shots)) {
      if (file.startsWith("create-")) fs.rmSync(path.join(shots, file), { force: true });
    }
    await Promise.all([
      loadFixture(s.source, "sales", { rows: 200 }),
      loadFixture(s.source, "hr", { rows: 50 }),
    ]);
    at = {
      target: { ...s.target, username: s.target.user, sslMode: "prefer" },
      controlDatabase: "postgres",
    };
    // The worker the console spawns logs under XDG_STATE_HOME: a folder of this test's.
    const stateHome = s.makeLogDir("console-create-");
    served.push(
      await serve(
        `postgresql://${s.target.user}@${s.target.host}:${s.target.port}/postgres`,
        s.target.password,
        { XDG_STATE_HOME: stateHome },
      ),
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await newPage(served[0].link);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    for (const one of served) await one.stop();
    killWorkers([NAME, "console-check"]);
    if (shots) console.log(`      screenshots in ${shots}`);
  });

  it("creates an online migration from the form: Test connection both ways, databases picked from the source → WaitingForUserAction", async () => {
    // The session cookie of the link ends after 12 hours.
    const [session] = await context.cookies();
    assert.equal(session.name, "pgmigrate_session");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.ok(
      Math.abs(session.expires - (Date.now() / 1000 + 12 * 3600)) < 120,
      `${session.expires}`,
    );
    // Keyboard: the grid's Create link, then every field has a label.
    const link = page.locator("#create-link");
    await link.focus();
    await page.keyboard.press("Enter");
    await page.locator("#create-form").waitFor();
    assert.equal(new URL(page.url()).pathname, "/create");
    const unlabeled = await page
      .locator("#create-form input, #create-form select")
      .evaluateAll((fields) =>
        fields
          .filter(
            (f) => ((f as unknown as { labels?: { length: number } }).labels?.length ?? 0) === 0,
          )
          .map((f) => f.outerHTML),
      );
    assert.deepEqual(unlabeled, []);
    assert.equal(await page.locator('input[name="c-mode"][value="Online"]').isChecked(), true);
    assert.equal(await page.locator("#c-option").inputValue(), "ValidateAndMigrate");

    await page.locator("#c-name").fill(NAME);
    await page.locator("#s-host").fill(s.source.host);
    await page.locator("#s-user").fill(s.source.user);
    // A bad field is answered by the input schema, on the property, before anything connects.
    await page.locator("#s-port").fill("70000");
    await page.locator("#test-source").click();
    const sourceResult = page.locator("#test-source-result");
    await until(async () => /^Failed/.test(await sourceResult.innerText()), {
      what: "the source test to refuse the port",
    });
    assert.equal(
      await sourceResult.innerText(),
      "Failed: source.port: port must be between 1 and 65535",
    );
    await page.locator("#s-port").fill(String(s.source.port));
    await page.locator("#s-password").fill(wrongPassword);
    await page.locator("#test-source").click();
    await until(async () => /^Failed: auth/.test(await sourceResult.innerText()), {
      what: "the source test to fail with a wrong password",
    });
    assert.match(
      await sourceResult.innerText(),
      /^Failed: authentication failed for user "[^"]+" on [^ ]+: check the password/,
    );
    await page.screenshot({ path: path.join(shots, "create-wrong-password.png") });

    await page.locator("#s-password").fill(s.source.password);
    await page.locator("#test-source").click();
    await until(async () => /^Succeeded/.test(await sourceResult.innerText()), {
      what: "the source test to succeed",
    });
    assert.match(
      await sourceResult.innerText(),
      new RegExp(
        `^Succeeded: connected to the source ${s.source.host}:${s.source.port} as user "${s.source.user}" \\(PostgreSQL \\d+`,
      ),
    );
    const offered = await page
      .locator('#database-list input[type="checkbox"]')
      .evaluateAll((boxes) => boxes.map((b) => b.getAttribute("value")));
    const onSource = await s.source.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1",
    );
    assert.deepEqual(
      offered,
      onSource.map((r) => r.datname),
    );
    assert.ok(offered.includes("sales") && offered.includes("hr"));

    await page.locator("#t-user").fill(s.target.user);
    await page.locator("#t-password").fill(s.target.password);
    await page.locator("#test-target").click();
    const targetResult = page.locator("#test-target-result");
    await until(async () => /^(Succeeded|Failed)/.test(await targetResult.innerText()), {
      what: "the target test",
    });
    assert.match(
      await targetResult.innerText(),
      new RegExp(`^Succeeded: connected to the target ${s.target.host}:${s.target.port} as user`),
    );

    // Nothing picked yet: Start answers with the input schema's message, on the property.
    await page.locator("#start").click();
    await until(async () => (await page.locator("#create-error").innerText()) !== "", {
      what: "the input error",
    });
    assert.match(
      await page.locator("#create-error").innerText(),
      /^databases: databases must list at least one database/,
    );
    await page.locator('#database-list input[value="sales"]').check();
    const summary = await page.locator("#create-summary").innerText();
    assert.match(summary, /Databases\s+sales/);
    assert.match(summary, /Mode\s+Online/);
    assert.match(summary, /password given/);
    await page.screenshot({ path: path.join(shots, "create-form.png"), fullPage: true });
    await page.setViewportSize({ width: 420, height: 800 });
    const overflow = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    assert.equal(overflow, 0, "the form fits a narrow window");
    await page.screenshot({ path: path.join(shots, "create-form-narrow.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });

    await page.locator("#start").focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/migrations/${NAME}`);
    await until(async () => (await page.locator("#state").innerText()) === "WaitingForUserAction", {
      what: "the console to show WaitingForUserAction",
      timeoutMs: 120_000,
    });
    workerPid = await leaseHolderPid(s.target, NAME);
    assert.ok(workerPid, "a worker holds the lease");
    s.spawnedPids.add(workerPid);
    const outputs = await getMigration(at, NAME);
    assert.equal(outputs?.migrationMode, "Online");
    assert.equal(outputs?.migrationOption, "ValidateAndMigrate");
    assert.deepEqual(Object.keys(outputs?.dbDetails ?? {}), ["sales"]);
    // Validated (the fixture's roles and settings give warnings, nothing failed).
    const checks = [
      ...(outputs?.validation?.serverLevel ?? []),
      ...(outputs?.validation?.databaseLevel ?? []).flatMap((d) => d.summary),
    ];
    assert.ok(checks.length > 10, `checks: ${checks.length}`);
    assert.deepEqual(
      checks.filter((c) => c.state === "Failed"),
      [],
    );
    assert.equal(
      await count(s.target, "sales", "SELECT count(*) AS n FROM customers"),
      await count(s.source, "sales", "SELECT count(*) AS n FROM customers"),
    );
  });

  it("charts latency samples from the control store (the same after serve restarts) and shows the time in each state", async () => {
    const workload = writeWorkload(s.source, "sales", { transactions: 100, pauseMs: 20 });
    const before = await until(
      async () => {
        const history = (await details()).latencyHistory;
        return history.length >= 3 ? history : undefined;
      },
      { what: "three latency samples in the control store" },
    );
    assert.equal((await workload).transactions, 100);
    const stored = await count(
      s.target,
      "postgres",
      `SELECT count(*) AS n FROM pgmigrate.latency_samples WHERE migration = '${NAME}'`,
    );
    assert.ok(stored >= before.length, `stored ${stored}, served ${before.length}`);
    assert.ok(before.every(([t, v], i) => v >= 0 && (i === 0 || t > before[i - 1][0])));

    // A new serve (new token, empty memory) charts the same samples.
    await served[0].stop();
    served.push(
      await serve(
        `postgresql://${s.target.user}@${s.target.host}:${s.target.port}/postgres`,
        s.target.password,
      ),
    );
    await page.close();
    page = await newPage(`${served[1].link.replace("/?", `/migrations/${NAME}?`)}`);
    await page.locator("#latency-chart canvas").waitFor();
    const after = (await details()).latencyHistory;
    assert.deepEqual(after.slice(0, before.length), before, "the history survived the restart");

    const states = (await details()).states;
    assert.equal(states[0].state, "InProgress");
    const last = states[states.length - 1];
    assert.deepEqual(
      [last.state, last.substate],
      ["WaitingForUserAction", "WaitingForCutoverTrigger"],
    );
    for (let i = 1; i < states.length; i++) {
      const [a, b] = [states[i - 1], states[i]];
      assert.ok(b.enteredAt >= a.enteredAt, "states in the order entered");
      assert.ok(
        a.state !== b.state || a.substate !== b.substate,
        "a state entered again is shown once",
      );
      assert.equal(
        a.seconds,
        Math.round((Date.parse(b.enteredAt) - Date.parse(a.enteredAt)) / 1000),
      );
    }
    const rows = await page.locator("#states-table tbody tr").allInnerTexts();
    assert.equal(rows.length, states.length);
    assert.match(
      rows[rows.length - 1],
      /WaitingForUserAction\s+WaitingForCutoverTrigger\s+.+\s+\d.* so far$/,
    );
    await page.screenshot({ path: path.join(shots, "create-details.png"), fullPage: true });
  });

  it("keeps only the newest samples per migration", async () => {
    const [row] = await s.target.query<{ lease_owner: string }>(
      "SELECT lease_owner FROM pgmigrate.migrations WHERE name = $1",
      [NAME],
    );
    const fence = { migration: NAME, owner: row.lease_owner, lost: () => undefined };
    // The worker is held still (its lease stays) so that no sample of its own lands meanwhile.
    process.kill(workerPid as number, "SIGSTOP");
    try {
      await withControl(at, async (db) => {
        for (const latency of [101, 102, 103]) await recordLatencySample(db, fence, latency, 0, 2);
      });
    } finally {
      process.kill(workerPid as number, "SIGCONT");
    }
    const kept = await s.target.query<{ latency_seconds: number }>(
      "SELECT latency_seconds FROM pgmigrate.latency_samples WHERE migration = $1 ORDER BY at",
      [NAME],
    );
    assert.deepEqual(
      kept.slice(0, 2).map((k) => k.latency_seconds),
      [102, 103],
    );
  });

  it("Cancel from the console → Canceled, the target database dropped, no slot left", async () => {
    const cancel = page.locator("#cancel");
    await until(() => cancel.isEnabled(), { what: "the Cancel button to be enabled" });
    await cancel.click();
    assert.deepEqual(await page.locator("#confirm-drops li").allInnerTexts(), ["sales"]);
    await page.locator("#confirm-yes").click();
    await until(async () => (await page.locator("#state").innerText()) === "Canceled", {
      what: "the console to show Canceled",
      timeoutMs: 90_000,
    });
    assert.equal(
      await count(
        s.target,
        "postgres",
        "SELECT count(*) AS n FROM pg_database WHERE datname = 'sales'",
      ),
      0,
    );
    assert.equal(
      await count(s.source, "postgres", "SELECT count(*) AS n FROM pg_replication_slots"),
      0,
    );
    assert.equal(await count(s.source, "sales", "SELECT count(*) AS n FROM pg_publication"), 0);
    if (workerPid) await processGone(workerPid, "the worker to exit after the cancel");
    const states = (await details()).states;
    assert.equal(states[states.length - 1].state, "Canceled");
  });

  it("an Offline Validate migration from the form only validates: Succeeded, no database created", async () => {
    await page.goto(`${served[1].origin}/create`);
    await page.locator("#create-form").waitFor();
    await page.locator("#c-name").fill("console-check");
    await page.locator('input[name="c-mode"][value="Offline"]').check();
    await page.locator("#c-option").selectOption("Validate");
    await page.locator("#s-host").fill(s.source.host);
    await page.locator("#s-port").fill(String(s.source.port));
    await page.locator("#s-user").fill(s.source.user);
    await page.locator("#s-password").fill(s.source.password);
    await page.locator("#test-source").click();
    await page.locator('#database-list input[value="hr"]').check();
    await page.locator("#t-password").fill(s.target.password);
    assert.match(
      await page.locator("#create-summary").innerText(),
      /Mode\s+Offline\s+Option\s+Validate\n/,
    );
    await page.locator("#start").click();
    await page.waitForURL("**/migrations/console-check");
    await until(async () => (await page.locator("#state").innerText()) === "Succeeded", {
      what: "the validation-only migration to succeed",
      timeoutMs: 60_000,
    });
    const outputs = await getMigration(at, "console-check");
    assert.equal(outputs?.migrationMode, "Offline");
    assert.equal(outputs?.migrationOption, "Validate");
    assert.equal(outputs?.substate, "Completed");
    assert.deepEqual(
      outputs?.validation?.databaseLevel.map((d) => d.databaseName),
      ["hr"],
    );
    assert.equal(
      await count(
        s.target,
        "postgres",
        "SELECT count(*) AS n FROM pg_database WHERE datname = 'hr'",
      ),
      0,
    );
    const rows = await page.locator("#states-table tbody tr").allInnerTexts();
    assert.match(rows[rows.length - 1], /^Succeeded\s+Completed\s+.+\s+—$/);
  });

  it("never stores, logs, serves or puts in a URL a password typed in the form", async () => {
    const logs: string[] = [];
    for (const [name, end] of [
      [NAME, /state Canceled/],
      ["console-check", /state Succeeded/],
    ] as const) {
      const outputs = await getMigration(at, name);
      const log = fs.readFileSync(outputs?.workerLog as string, "utf8");
      assert.match(log, end, `the log of ${name}'s worker`);
      logs.push(log);
    }
    const tables = await s.target.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgmigrate' ORDER BY 1",
    );
    assert.ok(tables.some((t) => t.table_name === "latency_samples"));
    const rows: string[] = [];
    for (const { table_name } of tables) {
      const found = await s.target.query<{ t: string }>(
        `SELECT t::text AS t FROM pgmigrate.${table_name} t`,
      );
      rows.push(...found.map((r) => r.t));
    }
    assert.ok(rows.length > 10, `control rows read: ${rows.length}`);
    // A body the server cannot parse is refused without being echoed back.
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
    const refused = await page.evaluate(
      async ([password, token]) => {
        const res = await fetch("/api/connections/test", {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": token },
          body: `{"role": "source", "endpoint": {"password": "${password}"`,
        });
        return { status: res.status, body: await res.text() };
      },
      [s.source.password, csrf ?? ""] as const,
    );
    assert.equal(refused.status, 400);
    assert.ok(!refused.body.includes(s.source.password), refused.body);
    const html = await page.content();
    assert.ok(bodies.length > 10, `bodies seen: ${bodies.length}`);
    for (const secret of [s.source.password, s.target.password, wrongPassword]) {
      for (const one of served)
        assert.ok(!one.output().includes(secret), "a password in serve's output");
      assert.ok(!logs.some((log) => log.includes(secret)), "a password in a worker's log");
      assert.ok(!rows.some((r) => r.includes(secret)), "a password in the control store");
      assert.ok(!html.includes(secret), "a password in the page");
      assert.ok(!bodies.some((b) => b.includes(secret)), "a password in a response body");
      assert.ok(!urls.some((u) => u.includes(secret)), "a password in a URL");
    }
  });
});
