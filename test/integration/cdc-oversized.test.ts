// A change carrying a value larger than a JavaScript string can hold (V8: ~512 MiB) fails the
// stream once, with the table, column and size — it used to crash the worker with an uncaught
// ERR_STRING_TOO_LONG on every restart while the slot kept the WAL (issue 11, finding 10).
import assert from "node:assert/strict";
import { MigrationError } from "../../provider/pg/errors";
import { publishPair, stream, type Pair } from "../support/cdc";
import { startPostgres, type PgServer } from "../support/postgres";

describe("replicating a value too large to hold", function () {
  let source: PgServer;
  let target: PgServer;
  let pair: Pair | undefined;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    for (const server of [source, target]) {
      await server.query("CREATE DATABASE huge");
      await server.query(
        "CREATE TABLE public.big (id int PRIMARY KEY, v text NOT NULL)",
        [],
        "huge",
      );
    }
  });

  after(async () => {
    for (const s of pair?.streams ?? []) await s.stop().catch(() => undefined);
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("fails the stream naming table, column and size; rows before it are applied", async () => {
    pair = await publishPair(source, "oversized", "huge");
    const s = await stream(source, target, pair, { maxRetries: 0 });
    await source.query("INSERT INTO public.big VALUES (1, 'small')", [], "huge");
    // 560 MiB of text: compressed on disk, decoded in full by the walsender.
    await source.query(
      "INSERT INTO public.big VALUES (2, repeat('b', 560 * 1024 * 1024))",
      [],
      "huge",
    );
    const err = await s.done.then(
      () => assert.fail("the stream ended without an error"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MigrationError, String(err));
    assert.equal(err.code, "PGM_VALUE_TOO_LARGE");
    assert.match(err.message, /560\.0 MiB in column "v" of "public"\."big"/);
    const rows = await target.query<{ id: number }>("SELECT id FROM public.big", [], "huge");
    assert.deepEqual(
      rows.map((r) => r.id),
      [1],
    );
  });
});
