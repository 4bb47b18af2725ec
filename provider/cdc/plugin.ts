// Our pgoutput plugin for pg-logical-replication: starts the stream with protocol 1 (PG10+)
// and decodes messages to raw text. parse() runs in stream order, before flow-control queueing.
import type { Client } from "pg";
import type { LogicalReplicationService } from "pg-logical-replication";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { decodePgoutput, type PgoutputMessage } from "./pgoutput";

/** The plugin shape LogicalReplicationService.subscribe expects. */
type ReplicationPlugin = Parameters<LogicalReplicationService["subscribe"]>[0];

/**
 * Output functions run in the walsender, under its session settings: pin the ones that change
 * a value's text (dates, intervals, float digits, bytea, money), as PostgreSQL's own
 * subscriber does, so every value parses back to the same value on the target.
 */
export const STABLE_OUTPUT_SQL =
  "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; " +
  "SET bytea_output = 'hex'; SET lc_monetary = 'C'";

export class PgoutputTextPlugin implements ReplicationPlugin {
  readonly options: { publication: string };
  /** XLogData messages decoded so far, in arrival order (keepalives are ordered against it). */
  received = 0;

  constructor(
    publication: string,
    private readonly onReceive?: (message: PgoutputMessage) => void,
  ) {
    this.options = { publication };
  }

  get name(): string {
    return "pgoutput";
  }

  async start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    await client.query(STABLE_OUTPUT_SQL);
    // publication_names is a list of identifiers inside a string literal.
    const options = [
      "proto_version '1'",
      `publication_names ${quoteLiteral(quoteIdent(this.options.publication))}`,
    ];
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lastLsn} (${options.join(", ")})`,
    );
  }

  parse(buffer: Buffer): PgoutputMessage {
    const message = decodePgoutput(buffer);
    this.received++;
    this.onReceive?.(message);
    return message;
  }
}
