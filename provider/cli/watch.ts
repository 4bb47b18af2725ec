// `pgmigrate watch`: redraws in place on a terminal (ANSI cursor movement), plain lines when
// stdout is a pipe; ends with the migration (exit 0/1) or on Ctrl-C (exit 0).
import { getMigration, getTableProgress, isEnded } from "../api/index";
import { redact } from "../pg/redact";
import { sleep } from "../pg/retry";
import type { MigrationOutputs } from "../spec/types";
import { checkMigrationName, noSuchMigration, warn, type CliContext } from "./context";
import { reviveWorker } from "./respawn";
import { exitCodeForState } from "./usage";
import { renderFrame, renderPlainLine, type TableProgress, type WatchSnapshot } from "./watch-view";

const POLL_MS = 1_000;
/** How often a dead worker is looked for (its lease expires after 30 s anyway). */
const REVIVE_EVERY_MS = 15_000;
/** Plain mode: a line when something changes, and at least this often while nothing does. */
const PLAIN_HEARTBEAT_MS = 30_000;

async function snapshot(ctx: CliContext, name: string): Promise<WatchSnapshot | undefined> {
  const outputs = await getMigration(ctx.at, name);
  if (!outputs) return undefined;
  const copying = Object.values(outputs.dbDetails).filter(
    (d) => d.fullLoadQueuedTables + d.fullLoadLoadingTables > 0,
  );
  const tables: Record<string, readonly TableProgress[]> =
    copying.length > 0
      ? await getTableProgress(
          ctx.at,
          name,
          copying.map((d) => d.databaseName),
        )
      : {};
  return { outputs, tables };
}

/** Redraws a block of lines in place: cursor up over the previous frame, clear, write. */
class TerminalFrame {
  private height = 0;

  draw(lines: readonly string[]): void {
    const width = process.stdout.columns || 120;
    const clipped = lines.map((l) => (l.length > width ? l.slice(0, width - 1) + "…" : l));
    const up = this.height > 0 ? `\x1b[${this.height}F` : "";
    process.stdout.write(`${up}\x1b[J${clipped.join("\n")}\n`);
    this.height = clipped.length;
  }
}

export async function watchCommand(
  ctx: CliContext,
  opts: { migrationName: string },
): Promise<number> {
  checkMigrationName(opts.migrationName);
  const name = opts.migrationName;
  const tty = Boolean(process.stdout.isTTY);
  const frame = new TerminalFrame();
  let stopped = false;
  const onSigint = (): void => {
    stopped = true;
  };
  // `on`, not `once`: a second Ctrl-C while closing must not kill the process with 130.
  process.on("SIGINT", onSigint);
  if (tty) process.stdout.write("\x1b[?25l"); // hide the cursor while redrawing
  let lastPlain = "";
  let lastPlainAt = 0;
  let lastRevive = 0;
  let warned = false;
  let outputs: MigrationOutputs | undefined;
  try {
    for (;;) {
      const snap = await snapshot(ctx, name);
      if (!snap) throw noSuchMigration(ctx, name);
      outputs = snap.outputs;
      if (!isEnded(outputs.state) && Date.now() - lastRevive >= REVIVE_EVERY_MS) {
        lastRevive = Date.now();
        const revived = await reviveWorker(ctx.at, name, ctx.env);
        ctx.secrets.push(...revived.secrets);
        if (revived.warning && !warned) warn(redact(revived.warning, ctx.secrets));
        warned ||= Boolean(revived.warning);
      }
      if (tty) {
        frame.draw(renderFrame(snap, process.stdout.rows || 40).map((l) => redact(l, ctx.secrets)));
      } else {
        const key = changeKey(outputs);
        if (key !== lastPlain || Date.now() - lastPlainAt >= PLAIN_HEARTBEAT_MS) {
          process.stdout.write(redact(renderPlainLine(snap), ctx.secrets) + "\n");
          lastPlain = key;
          lastPlainAt = Date.now();
        }
      }
      if (isEnded(outputs.state) || stopped) break;
      await sleepUnless(POLL_MS, () => stopped);
      if (stopped) break;
    }
  } finally {
    if (tty) process.stdout.write("\x1b[?25h");
  }
  return stopped || !outputs ? 0 : exitCodeForState(outputs.state);
}

/** What makes a plain line worth printing: state and counters, not latency jitter. */
function changeKey(o: MigrationOutputs): string {
  return JSON.stringify([
    o.state,
    o.substate,
    Object.values(o.dbDetails).map((d) => [
      d.migrationState,
      d.fullLoadQueuedTables,
      d.fullLoadLoadingTables,
      d.fullLoadCompletedTables,
      d.fullLoadErroredTables,
      d.cdcInsertCounter,
      d.cdcUpdateCounter,
      d.cdcDeleteCounter,
    ]),
  ]);
}

/** Sleeps `ms`, waking early (every 100 ms check) when `stop()` turns true. */
async function sleepUnless(ms: number, stop: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && !stop()) {
    await sleep(Math.min(100, until - Date.now()));
  }
}
