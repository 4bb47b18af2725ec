// Backend `testcontainers`: the same PgServer interface on a Docker engine (not available on
// machines without one; select with PGMIGRATE_TEST_BACKEND=testcontainers).
import { PostgreSqlContainer } from "@testcontainers/postgresql";
import { Client } from "pg";
import type { PgServer, StartOptions } from "./postgres";
import { pause } from "./wait";

export async function startContainer(options: StartOptions): Promise<PgServer> {
  const version = options.version ?? 15;
  const settings: Record<string, string | number> = {
    wal_level: "logical",
    max_replication_slots: 20,
    max_wal_senders: 20,
    ...options.settings,
  };
  const container = await new PostgreSqlContainer(`postgres:${version}`)
    .withCommand(["postgres", ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])])
    .start();
  const server: PgServer = {
    host: container.getHost(),
    // A restart may map a new host port: read it each time.
    get port() {
      return container.getPort();
    },
    user: container.getUsername(),
    password: container.getPassword(),
    version,
    url: (database = "postgres") =>
      `postgresql://${server.user}:${server.password}@${server.host}:${server.port}/${encodeURIComponent(database)}`,
    connect: async (database = "postgres") => {
      const client = new Client({
        host: server.host,
        port: server.port,
        user: server.user,
        password: server.password,
        database,
      });
      await client.connect();
      return client;
    },
    query: async <R extends Record<string, unknown>>(
      sql: string,
      params: unknown[] = [],
      database = "postgres",
    ) => {
      const client = await server.connect(database);
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    restart: async (restartOptions: { downMs?: number } = {}) => {
      if (!restartOptions.downMs) {
        await container.restart({ timeout: 10_000 });
        return;
      }
      // Stopped this long, then started again (the host port may change: see `port`).
      await container.exec(["pg_ctl", "stop", "-m", "fast", "-w"], { user: "postgres" });
      await pause(restartOptions.downMs); // the outage itself
      await container.restart({ timeout: 10_000 });
    },
    stop: async () => {
      await container.stop();
    },
  };
  return server;
}
