// Our pgoutput plugin for pg-logical-replication: starts the stream with protocol 1 (PG10+)
// and decodes messages to raw text. parse() runs in stream order, before flow-control queueing.
import type { Client } from "pg";
import type { LogicalReplicationService } from "pg-logical-replication";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { decodePgoutput, type PgoutputMessage } from "./pgoutput";

/** The plugin shape LogicalReplicationService.subscribe expects. */
type ReplicationPlugin = Parameters<LogicalReplicationService["subscribe"]>[0];

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

  // Output functions run in the walsender under its session settings: the connection pins them
  // in its startup packet (pg/connect.ts), so every value parses back the same on the target.
  async start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
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
