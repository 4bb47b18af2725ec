// The replication bench's replication objects: a native subscription (publication on the source,
// subscription on the target) and ours (publication, slot, stream), and their removal.
import {
  createSlotWithSnapshot,
  dropSlotAndPublication,
  ensurePublication,
  startReplication,
  type ReplicationStream,
} from "../provider/cdc";
import { quoteLiteral } from "../provider/pg/ident";
import { publicationName, slotName } from "../provider/pg/names";
import type { PgServer } from "../test/support/postgres";
import { endpoint } from "./support";
import { WORKLOAD_TABLES } from "./workload";

/** Source database of the workload, and our target database (startReplication keeps the name). */
export const DB = "bench";
/** The native subscriber's database on the target server. */
export const NATIVE_DB = "bench_native";
const SUBSCRIPTION = "bench_native";
const MIGRATION = "bench-replication";

/** The bench's handle on everything it created, so cleanup can undo exactly that. */
export class Setup {
  stream?: ReplicationStream;
  subscription = false;
  consistentPoint = "";
  readonly slot = slotName(MIGRATION, DB);
  readonly publication = publicationName(MIGRATION);

  constructor(
    readonly source: PgServer,
    readonly target: PgServer,
  ) {}

  /**
   * Native: publication + disabled subscription without initial copy. The subscriber connects over
   * the source's Unix socket (local trust in the harness), so no password is put in its catalog.
   */
  async createNative(): Promise<void> {
    const tables = WORKLOAD_TABLES.join(", ");
    await this.source.query(`CREATE PUBLICATION ${SUBSCRIPTION} FOR TABLE ${tables}`, [], DB);
    const [socket] = await this.source.query<{ dir: string }>(
      "SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS dir",
    );
    const conninfo = `host=${socket.dir} port=${this.source.port} user=${this.source.user} dbname=${DB}`;
    await this.target.query(
      `CREATE SUBSCRIPTION ${SUBSCRIPTION} CONNECTION ${quoteLiteral(conninfo)} PUBLICATION ${SUBSCRIPTION}
         WITH (copy_data = false, enabled = false)`,
      [],
      NATIVE_DB,
    );
    this.subscription = true;
  }

  async setNative(enabled: boolean): Promise<void> {
    await this.target.query(
      `ALTER SUBSCRIPTION ${SUBSCRIPTION} ${enabled ? "ENABLE" : "DISABLE"}`,
      [],
      NATIVE_DB,
    );
  }

  /** Waits until the subscription's apply worker runs (the launcher starts it asynchronously). */
  async nativeRunning(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.target.query(
        "SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL AND received_lsn IS NOT NULL",
        [SUBSCRIPTION],
        NATIVE_DB,
      );
      if (rows.length > 0) return;
      if (Date.now() > deadline)
        throw new Error(`the apply worker of ${SUBSCRIPTION} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Ours: publication and slot as the runtime worker creates them (the snapshot is not needed). */
  async createOurs(): Promise<void> {
    await ensurePublication(endpoint(this.source), DB, this.publication);
    const handle = await createSlotWithSnapshot(endpoint(this.source), DB, this.slot);
    await handle.release();
    this.consistentPoint = handle.consistentPoint;
  }

  async startOurs(): Promise<ReplicationStream> {
    this.stream = await startReplication({
      source: endpoint(this.source),
      target: endpoint(this.target),
      database: DB,
      slotName: this.slot,
      publication: this.publication,
      startLsn: this.consistentPoint,
    });
    return this.stream;
  }

  async stopOurs(): Promise<void> {
    await this.stream?.stop();
    this.stream = undefined;
  }

  /** Drops subscription (and with it its slot on the source), publications, our slot. */
  async cleanup(): Promise<void> {
    await this.stopOurs().catch((err: unknown) => console.error("stopping our stream:", err));
    if (this.subscription) {
      await this.target
        .query(`DROP SUBSCRIPTION IF EXISTS ${SUBSCRIPTION}`, [], NATIVE_DB)
        .catch((err: unknown) => console.error("dropping the subscription:", err));
    }
    await this.source
      .query(`DROP PUBLICATION IF EXISTS ${SUBSCRIPTION}`, [], DB)
      .catch((err: unknown) => console.error("dropping the native publication:", err));
    await dropSlotAndPublication(endpoint(this.source), DB, this.slot, this.publication);
    const left = await this.source.query<{ slot_name: string }>(
      "SELECT slot_name FROM pg_replication_slots",
    );
    if (left.length > 0)
      console.error(`slots left on the source: ${left.map((s) => s.slot_name).join(", ")}`);
  }
}
